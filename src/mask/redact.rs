//! `keep`, `nullify` and `redact`: the operators that need no key.

use std::sync::Arc;

use arrow_array::{new_null_array, Array, ArrayRef};
use arrow_schema::DataType;

use super::strings::map_strings;
use super::{ChunkContext, ColumnOperator};
use crate::error::Result;

/// Passes the column through untouched (zero copy).
pub struct Keep;

impl ColumnOperator for Keep {
    fn name(&self) -> &'static str {
        "keep"
    }
    fn apply(&self, input: &ArrayRef, _: &ChunkContext<'_>) -> Result<ArrayRef> {
        Ok(Arc::clone(input))
    }
}

/// Replaces every value with null, keeping the column's type.
pub struct Nullify;

impl ColumnOperator for Nullify {
    fn name(&self) -> &'static str {
        "nullify"
    }
    fn introduces_nulls(&self) -> bool {
        true
    }
    fn apply(&self, input: &ArrayRef, _: &ChunkContext<'_>) -> Result<ArrayRef> {
        Ok(new_null_array(input.data_type(), input.len()))
    }
}

/// Replaces every non-null string with one constant (default `[REDACTED]`).
pub struct Redact {
    replacement: String,
}

/// The replacement `redact` uses when the policy gives none.
pub const DEFAULT_REDACTION: &str = "[REDACTED]";

impl Redact {
    /// A redaction with the given replacement text.
    pub fn new(replacement: impl Into<String>) -> Self {
        Self {
            replacement: replacement.into(),
        }
    }
}

impl ColumnOperator for Redact {
    fn name(&self) -> &'static str {
        "redact"
    }
    fn output_type(&self, input: &DataType) -> DataType {
        input.clone()
    }
    fn apply(&self, input: &ArrayRef, _: &ChunkContext<'_>) -> Result<ArrayRef> {
        map_strings(input.as_ref(), |_, _, out| {
            out.push_str(&self.replacement);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int32Array, RecordBatch, StringArray};

    fn context(batch: &RecordBatch) -> ChunkContext<'_> {
        ChunkContext {
            row_offset: 0,
            batch,
        }
    }

    #[test]
    fn redact_replaces_values_and_keeps_nulls() {
        let batch = RecordBatch::new_empty(Arc::new(arrow_schema::Schema::empty()));
        let input: ArrayRef = Arc::new(StringArray::from(vec![Some("123-45-6789"), None]));
        let out = Redact::new(DEFAULT_REDACTION)
            .apply(&input, &context(&batch))
            .unwrap();
        let out = out.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(out.value(0), "[REDACTED]");
        assert!(out.is_null(1));
    }

    #[test]
    fn nullify_keeps_type() {
        let batch = RecordBatch::new_empty(Arc::new(arrow_schema::Schema::empty()));
        let input: ArrayRef = Arc::new(Int32Array::from(vec![1, 2, 3]));
        let out = Nullify.apply(&input, &context(&batch)).unwrap();
        assert_eq!(out.data_type(), &DataType::Int32);
        assert_eq!(out.null_count(), 3);
    }
}
