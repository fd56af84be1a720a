//! Python face of [`crate::datasets`] and [`crate::detect::labelled`].

use std::sync::Arc;

use arrow_array::{ArrayRef, ListArray, RecordBatch, StringArray, StructArray, UInt64Array};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, Field, FieldRef, Fields, Schema, SchemaRef};
use pyo3::prelude::*;
use pyo3_arrow::PyTable;

use crate::datasets;
use crate::detect::labelled::{self, LabelledNote};
use crate::parallel::RunControl;

/// Deterministic synthetic PII table of `rows` rows (an Arrow stream object).
#[pyfunction]
#[pyo3(signature = (rows, seed=0))]
pub(crate) fn synthetic_pii(py: Python<'_>, rows: usize, seed: u64) -> PyResult<PyTable> {
    let control = RunControl::new();
    let batches =
        super::run::run_blocking(py, &control, None, |_| datasets::synthetic_pii(rows, seed))?;
    PyTable::try_new(batches, datasets::synthetic_pii_schema())
}

fn span_fields() -> Fields {
    Fields::from(vec![
        Field::new("entity", DataType::Utf8, false),
        Field::new("start", DataType::UInt64, false),
        Field::new("end", DataType::UInt64, false),
    ])
}

fn span_item() -> FieldRef {
    Arc::new(Field::new("item", DataType::Struct(span_fields()), false))
}

fn labelled_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("note", DataType::Utf8, false),
        Field::new("spans", DataType::List(span_item()), false),
    ]))
}

/// One batch: `note` and its ground-truth `spans` (character offsets, as `labelled` records them).
fn labelled_batch(notes: &[LabelledNote]) -> crate::error::Result<RecordBatch> {
    let all_spans = || notes.iter().flat_map(|note| note.spans.iter());
    let entity: StringArray = all_spans().map(|span| Some(span.entity)).collect();
    // usize -> u64 is lossless on every target Rust supports.
    let start = UInt64Array::from_iter_values(all_spans().map(|span| span.start as u64));
    let end = UInt64Array::from_iter_values(all_spans().map(|span| span.end as u64));
    let columns: Vec<ArrayRef> = vec![Arc::new(entity), Arc::new(start), Arc::new(end)];
    let spans = StructArray::try_new(span_fields(), columns, None)?;
    let offsets = OffsetBuffer::from_lengths(notes.iter().map(|note| note.spans.len()));
    let spans = ListArray::try_new(span_item(), offsets, Arc::new(spans), None)?;
    let text = StringArray::from_iter_values(notes.iter().map(|note| note.text.as_str()));
    let columns: Vec<ArrayRef> = vec![Arc::new(text), Arc::new(spans)];
    Ok(RecordBatch::try_new(labelled_schema(), columns)?)
}

/// `rows` synthetic notes with ground-truth spans and hard negatives (an Arrow stream object).
#[pyfunction]
#[pyo3(signature = (rows, seed=0))]
pub(crate) fn labelled_notes(py: Python<'_>, rows: usize, seed: u64) -> PyResult<PyTable> {
    let control = RunControl::new();
    let batch = super::run::run_blocking(py, &control, None, |_| {
        labelled_batch(&labelled::labelled_notes(rows, seed))
    })?;
    PyTable::try_new(vec![batch], labelled_schema())
}
