//! PyO3 glue: the `amlguard._amlguard` extension module.
//!
//! Only argument conversion, Arrow PyCapsule import/export and error mapping live here; each file
//! mirrors one core module (`keys.rs` ↔ `crate::keys`, `policy.rs` ↔ `crate::policy`, ...).
//! Long work goes through [`run::run_blocking`], which releases the GIL and honours Ctrl-C.

mod audit;
mod azure;
mod blob;
mod columns;
mod datasets;
mod detect;
mod envelope;
mod error;
mod forget;
mod io;
mod keys;
mod pme;
mod policy;
mod reuse;
mod run;

use pyo3::prelude::*;

/// `s` with `&`, `<` and `>` escaped, for the notebook views of reports.
pub(crate) fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A report's notebook view: one row per (label, already escaped value).
pub(crate) fn html_table(caption: &str, rows: &[(&str, String)]) -> String {
    let body: String = rows
        .iter()
        .map(|(k, v)| format!("<tr><th style=\"text-align:left\">{k}</th><td>{v}</td></tr>"))
        .collect();
    format!("<table><caption>{caption}</caption>{body}</table>")
}

#[pymodule]
fn _amlguard(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add_class::<keys::PyLocalKeyring>()?;
    module.add_class::<policy::PyCorePolicy>()?;
    module.add_class::<io::PyMaskReport>()?;
    module.add_function(wrap_pyfunction!(io::mask_file, module)?)?;
    module.add_function(wrap_pyfunction!(datasets::synthetic_pii, module)?)?;
    module.add_function(wrap_pyfunction!(datasets::labelled_notes, module)?)?;
    module.add_class::<keys::PyKek>()?;
    module.add_class::<detect::PyScanReport>()?;
    module.add_function(wrap_pyfunction!(detect::detect, module)?)?;
    module.add_function(wrap_pyfunction!(detect::scan, module)?)?;
    module.add_class::<envelope::PyEnvelopeReport>()?;
    module.add_class::<envelope::PyHeaderInfo>()?;
    module.add_class::<envelope::PyEncryptedFile>()?;
    module.add_class::<reuse::PyDekReuse>()?;
    module.add_function(wrap_pyfunction!(envelope::encrypt_bytes, module)?)?;
    module.add_function(wrap_pyfunction!(envelope::decrypt_bytes, module)?)?;
    module.add_function(wrap_pyfunction!(envelope::encrypt_file, module)?)?;
    module.add_function(wrap_pyfunction!(envelope::decrypt_file, module)?)?;
    module.add_function(wrap_pyfunction!(envelope::rewrap, module)?)?;
    module.add_function(wrap_pyfunction!(envelope::inspect, module)?)?;
    module.add_function(wrap_pyfunction!(envelope::open_encrypted, module)?)?;
    module.add_class::<audit::PyAuditLog>()?;
    module.add_class::<audit::PyAuditReport>()?;
    module.add_function(wrap_pyfunction!(audit::verify_proof, module)?)?;
    module.add_function(wrap_pyfunction!(audit::verify_audit_log, module)?)?;
    module.add_class::<forget::PySubjectKeyStore>()?;
    module.add_function(wrap_pyfunction!(forget::forget_json, module)?)?;
    module.add_function(wrap_pyfunction!(forget::verify_forgotten_json, module)?)?;
    module.add_class::<azure::PyAzureKeyVault>()?;
    module.add_class::<azure::PyAzureKek>()?;
    module.add_class::<blob::PyEncryptedReader>()?;
    module.add_function(wrap_pyfunction!(blob::encrypt_file, module)?)?;
    module.add_function(wrap_pyfunction!(blob::decrypt_file, module)?)?;
    module.add_function(wrap_pyfunction!(blob::open_encrypted, module)?)?;
    module.add_function(wrap_pyfunction!(blob::mask_location, module)?)?;
    module.add_function(wrap_pyfunction!(columns::encrypt_columns, module)?)?;
    module.add_function(wrap_pyfunction!(columns::decrypt_columns, module)?)?;
    module.add_function(wrap_pyfunction!(columns::encrypted_columns_json, module)?)?;
    module.add_class::<pme::PyParquetReport>()?;
    module.add_class::<pme::PyParquetKms>()?;
    module.add_function(wrap_pyfunction!(pme::write_parquet, module)?)?;
    module.add_function(wrap_pyfunction!(pme::read_parquet, module)?)?;
    module.add_class::<pme::PyKeyRotationReport>()?;
    module.add_function(wrap_pyfunction!(pme::rotate_parquet_keys, module)?)?;
    Ok(())
}
