//! Declarative masking policies: parse ([`model`]), check against a schema and compile into
//! operators ([`compile`]), and apply to Arrow data in parallel ([`apply`]).
//!
//! ```
//! use std::sync::Arc;
//! use amlguard::keys::LocalKeyring;
//! use amlguard::policy::Policy;
//! use arrow_array::{RecordBatch, StringArray};
//! use arrow_schema::{DataType, Field, Schema};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let keyring = LocalKeyring::open(dir.path()).unwrap();
//! keyring.ensure_key("pseudo").unwrap();
//! let policy = Policy::from_json(r#"{"columns": {"email": {"op": "hash", "key": "pseudo"}}}"#).unwrap();
//! let schema = Arc::new(Schema::new(vec![Field::new("email", DataType::Utf8, true)]));
//! let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(vec!["a@b.c"]))]).unwrap();
//! let compiled = policy.compile(schema, &keyring).unwrap();
//! let masked = compiled.apply_batches(&[batch], 0, &Default::default()).unwrap();
//! assert_eq!(masked[0].num_rows(), 1);
//! ```

pub mod apply;
pub mod compile;
pub mod model;

pub use apply::MaskingReader;
pub use compile::CompiledPolicy;
pub use model::{DefaultAction, Policy, Rule};
