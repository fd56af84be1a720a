//! Applying a compiled policy to record batches: in parallel, in fixed-size row chunks.
//!
//! Each input batch is cut into chunks of [`CHUNK_ROWS`] rows (zero-copy slices); chunks are
//! masked in parallel on amlguard's pool and come back in order, one output batch per chunk.
//! Chunk boundaries depend only on the data, never on the thread count, and every operator is a
//! per-row function of its input and global row index, so output is identical for any number
//! of threads.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::{ArrowError, SchemaRef};
use rayon::prelude::*;

use super::compile::CompiledPolicy;
use crate::error::{Error, Result};
use crate::mask::ChunkContext;
use crate::parallel::{self, RunControl};

/// Rows per parallel work unit.
pub const CHUNK_ROWS: usize = 32 * 1024;

struct ChunkPlan {
    batch: usize,
    start: usize,
    rows: usize,
    row_offset: u64,
}

impl CompiledPolicy {
    fn check_schema(&self, batch: &RecordBatch) -> Result<()> {
        let expected = self.input_schema.fields();
        let actual = batch.schema_ref().fields();
        let same = expected.len() == actual.len()
            && expected
                .iter()
                .zip(actual.iter())
                .all(|(e, a)| e.name() == a.name() && e.data_type() == a.data_type());
        if same {
            Ok(())
        } else {
            Err(Error::invalid_data(
                None,
                "a batch's schema differs from the schema the policy was compiled for",
            ))
        }
    }

    /// Mask one chunk. `row_offset` is the global index of its first row.
    pub fn apply_chunk(&self, chunk: &RecordBatch, row_offset: u64) -> Result<RecordBatch> {
        let context = ChunkContext {
            row_offset,
            batch: chunk,
        };
        let columns = chunk
            .columns()
            .iter()
            .zip(&self.operators)
            .zip(self.input_schema.fields())
            .map(|((column, operator), field)| {
                operator
                    .apply(column, &context)
                    .map_err(|e| e.in_column(field.name()))
            })
            .collect::<Result<Vec<_>>>()?;
        let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(chunk.num_rows()));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.output_schema),
            columns,
            &options,
        )?)
    }

    /// Mask `batches` (whose first row has global index `first_row`) on `threads` workers
    /// (`None`: all CPUs). Returns one batch per chunk, in input order.
    pub fn apply_batches_on(
        &self,
        batches: &[RecordBatch],
        first_row: u64,
        control: &RunControl,
        threads: Option<usize>,
    ) -> Result<Vec<RecordBatch>> {
        let mut plans = Vec::new();
        let mut row_offset = first_row;
        for (index, batch) in batches.iter().enumerate() {
            self.check_schema(batch)?;
            let mut start = 0;
            while start < batch.num_rows() {
                let rows = CHUNK_ROWS.min(batch.num_rows() - start);
                plans.push(ChunkPlan {
                    batch: index,
                    start,
                    rows,
                    row_offset,
                });
                start += rows;
                row_offset += rows as u64;
            }
        }
        let run = |plan: &ChunkPlan| -> Result<RecordBatch> {
            control.check()?;
            let chunk = batches[plan.batch].slice(plan.start, plan.rows);
            let out = self.apply_chunk(&chunk, plan.row_offset)?;
            control.add_rows_done(plan.rows as u64);
            Ok(out)
        };
        if plans.len() <= 1 {
            return plans.iter().map(run).collect();
        }
        parallel::pool(threads)?.install(|| plans.par_iter().map(run).collect())
    }

    /// [`CompiledPolicy::apply_batches_on`] with one worker per CPU.
    pub fn apply_batches(
        &self,
        batches: &[RecordBatch],
        first_row: u64,
        control: &RunControl,
    ) -> Result<Vec<RecordBatch>> {
        self.apply_batches_on(batches, first_row, control, None)
    }
}

/// A [`RecordBatchReader`] that masks another reader's batches as they are pulled.
pub struct MaskingReader {
    input: Box<dyn RecordBatchReader + Send>,
    policy: Arc<CompiledPolicy>,
    pending: VecDeque<RecordBatch>,
    rows_seen: u64,
    threads: Option<usize>,
    control: Arc<RunControl>,
}

impl MaskingReader {
    /// Wrap `input`; the policy must have been compiled for `input`'s schema.
    pub fn new(
        input: Box<dyn RecordBatchReader + Send>,
        policy: Arc<CompiledPolicy>,
        threads: Option<usize>,
        control: Arc<RunControl>,
    ) -> Self {
        Self {
            input,
            policy,
            pending: VecDeque::new(),
            rows_seen: 0,
            threads,
            control,
        }
    }
}

impl Iterator for MaskingReader {
    type Item = std::result::Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(batch) = self.pending.pop_front() {
                return Some(Ok(batch));
            }
            let batch = match self.input.next()? {
                Ok(batch) => batch,
                Err(e) => return Some(Err(e)),
            };
            let rows = batch.num_rows() as u64;
            match self.policy.apply_batches_on(
                std::slice::from_ref(&batch),
                self.rows_seen,
                &self.control,
                self.threads,
            ) {
                Ok(out) => self.pending.extend(out),
                Err(e) => return Some(Err(ArrowError::ExternalError(Box::new(e)))),
            }
            self.rows_seen += rows;
        }
    }
}

impl RecordBatchReader for MaskingReader {
    fn schema(&self) -> SchemaRef {
        self.policy.output_schema()
    }
}
