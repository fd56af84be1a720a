//! PyO3 glue: the `amlguard._amlguard` extension module.
//!
//! Only argument conversion, Arrow PyCapsule import/export and error mapping live here; each file
//! mirrors one core module (`keys.rs` ↔ `crate::keys`, `policy.rs` ↔ `crate::policy`, ...).
//! Long work goes through [`run::run_blocking`], which releases the GIL and honours Ctrl-C.

mod azure;
mod blob;
mod datasets;
mod error;
mod io;
mod keys;
mod policy;
mod run;

use pyo3::prelude::*;

#[pymodule]
fn _amlguard(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add_class::<keys::PyLocalKeyring>()?;
    module.add_class::<policy::PyCorePolicy>()?;
    module.add_class::<io::PyMaskReport>()?;
    module.add_function(wrap_pyfunction!(io::mask_file, module)?)?;
    module.add_function(wrap_pyfunction!(datasets::synthetic_pii, module)?)?;
    module.add_class::<azure::PyAzureKeyVault>()?;
    module.add_class::<azure::PyAzureKek>()?;
    module.add_function(wrap_pyfunction!(azure::encrypt_bytes, module)?)?;
    module.add_function(wrap_pyfunction!(azure::decrypt_bytes, module)?)?;
    module.add_class::<blob::PyEncryptedReader>()?;
    module.add_function(wrap_pyfunction!(blob::encrypt_file, module)?)?;
    module.add_function(wrap_pyfunction!(blob::decrypt_file, module)?)?;
    module.add_function(wrap_pyfunction!(blob::open_encrypted, module)?)?;
    module.add_function(wrap_pyfunction!(blob::mask_location, module)?)?;
    Ok(())
}
