//! Masking and anonymisation operators over Arrow arrays, one file per operator family.
//!
//! Each operator implements [`ColumnOperator`]: it declares the output type for an input type and
//! transforms one array chunk. Operators are built (with their keys resolved and parameters
//! checked) by the policy compiler in [`crate::policy`]; they never see Python and never print
//! values or key material. Nulls stay null in every operator.
//!
//! Output never depends on how rows are split into chunks or on the thread count: operators are
//! per-value functions, and the one randomised operator ([`noise`]) positions its random stream by
//! the global row index it gets through [`ChunkContext`].

pub mod date_shift;
pub mod fpe;
pub mod generalize;
pub mod hash;
pub mod noise;
pub mod partial;
pub(crate) mod recycle;
pub mod redact;
pub(crate) mod strings;
pub mod tokenize;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::DataType;

use crate::error::Result;

/// What an operator sees of where its chunk sits.
pub struct ChunkContext<'a> {
    /// Index, within the whole input, of the chunk's first row.
    pub row_offset: u64,
    /// The chunk's full record batch (operators such as date_shift read other columns).
    pub batch: &'a RecordBatch,
}

/// A compiled, ready-to-run transformation of one column.
pub trait ColumnOperator: Send + Sync {
    /// The operator's policy name (`hash`, `mask`, ...).
    fn name(&self) -> &'static str;
    /// Arrow type of the output for a column of `input` type.
    fn output_type(&self, input: &DataType) -> DataType {
        input.clone()
    }
    /// Whether the output may hold nulls where the input has none.
    fn introduces_nulls(&self) -> bool {
        false
    }
    /// Transform one chunk of the column.
    fn apply(&self, input: &ArrayRef, context: &ChunkContext<'_>) -> Result<ArrayRef>;
}
