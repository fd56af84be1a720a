//! Detection over Arrow data: [`detect`] lists findings row by row, [`scan`] classifies columns.
//!
//! Both work over Utf8, LargeUtf8 and Utf8View arrays, check UTF-8 first (binary data cast to
//! a string type without validation is a typed error, not undefined behaviour), cut the rows
//! into fixed chunks of [`CHUNK_ROWS`] and process the chunks in parallel on amlguard's pool.
//! Chunk boundaries depend only on the data, and chunk results are concatenated (or summed) in
//! order, so the output is the same for any thread count.
//!
//! [`detect`] returns a record batch with one row per finding: `row` (global row index, u64),
//! `entity` (utf8), `start` and `end` (character offsets, u64) and `score` (f64). [`scan`]
//! returns a [`ScanReport`]: per string column and entity, how many matches, how many and what
//! fraction of the non-null values contain one, and a suggested operator. Neither ever keeps a
//! matched value.
//!
//! ```
//! use std::sync::Arc;
//! use amlguard::detect::{scan, Detector};
//! use arrow_array::{RecordBatch, StringArray};
//!
//! let detector = Detector::builtin().unwrap();
//! let contact = StringArray::from(vec!["jane@example.com", "joe@example.org", "al@example.net", "bo@example.fr", "n/a"]);
//! let batch = RecordBatch::try_from_iter([("contact", Arc::new(contact) as _)]).unwrap();
//! let report = scan(&[batch], &detector, None).unwrap();
//! let email = &report.columns[0].entities[0];
//! assert_eq!((email.entity.as_str(), email.values_with_match), ("EMAIL", 4));
//! assert_eq!(report.columns[0].suggested_op, "hash");
//! ```

use std::fmt;
use std::sync::Arc;

use arrow_array::builder::{Float64Builder, StringBuilder, UInt64Builder};
use arrow_array::{Array, ArrayRef, Float64Array, RecordBatch, UInt64Array};
use arrow_buffer::ScalarBuffer;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use arrow_select::concat::concat_batches;
use rayon::prelude::*;
use serde::Serialize;

use super::engine::{char_offsets, resolve_overlaps, Detector, Finding};
use super::recognizers::{self, SECRET_ENTITIES};
use super::{ExternalRecognizer, Span};
use crate::error::{Error, Result};
use crate::mask::recycle;
use crate::mask::strings::{is_string_type, string_values};
use crate::parallel::{self, RunControl};

/// Rows per parallel work unit.
pub const CHUNK_ROWS: usize = 16 * 1024;

/// Options for [`detect_with`].
#[derive(Default)]
pub struct DetectOptions<'a> {
    /// Global index of the array's first row (for arrays that are one batch of many).
    pub first_row: u64,
    /// Worker threads (`None`: one per CPU).
    pub threads: Option<usize>,
    /// Extra spans from a model, merged with the built-in findings.
    pub external: Option<&'a dyn ExternalRecognizer>,
    /// Cancellation and progress.
    pub control: Option<&'a RunControl>,
}

/// The schema of [`detect`]'s output.
pub fn detect_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("row", DataType::UInt64, false),
        Field::new("entity", DataType::Utf8, false),
        Field::new("start", DataType::UInt64, false),
        Field::new("end", DataType::UInt64, false),
        Field::new("score", DataType::Float64, false),
    ]))
}

/// Findings of `detector` in a string array, one output row per finding (see the module docs).
pub fn detect(array: &dyn Array, detector: &Detector) -> Result<RecordBatch> {
    detect_with(array, detector, &DetectOptions::default())
}

/// [`detect`] with a row offset, a thread count, an external recognizer and cancellation.
pub fn detect_with(
    array: &dyn Array,
    detector: &Detector,
    options: &DetectOptions<'_>,
) -> Result<RecordBatch> {
    detect_chunked(&[array], detector, options)
}

/// [`detect_with`] over the chunks of one column, rows numbered across them: all chunks' row
/// ranges go to the pool at once, so small chunks keep every worker busy.
pub fn detect_chunked(
    arrays: &[&dyn Array],
    detector: &Detector,
    options: &DetectOptions<'_>,
) -> Result<RecordBatch> {
    let batches = detect_batches(arrays, detector, options)?;
    Ok(concat_batches(&detect_schema(), &batches)?)
}

/// [`detect_chunked`] as one record batch per work unit, in row order: each worker builds
/// its batch's arrays, and nothing is copied after (one batch costs a serial copy of every
/// finding).
pub fn detect_batches(
    arrays: &[&dyn Array],
    detector: &Detector,
    options: &DetectOptions<'_>,
) -> Result<Vec<RecordBatch>> {
    let mut chunks: Vec<(usize, usize, usize, u64)> = Vec::new();
    let mut first_row = options.first_row;
    for (index, array) in arrays.iter().enumerate() {
        check_string_array(*array)?;
        for (start, len) in chunk_ranges(array.len()) {
            chunks.push((index, start, len, first_row + start as u64));
        }
        first_row += array.len() as u64;
    }
    let run = |&(index, start, len, row): &(usize, usize, usize, u64)| -> Result<RecordBatch> {
        if let Some(control) = options.control {
            control.check()?;
        }
        let slice = arrays[index].slice(start, len);
        let found = detect_chunk(slice.as_ref(), detector, row, options.external)?;
        if let Some(control) = options.control {
            control.add_rows_done(len as u64);
        }
        Ok(found)
    };
    if chunks.len() <= 1 {
        chunks.iter().map(run).collect()
    } else {
        parallel::pool(options.threads)?.install(|| chunks.par_iter().map(run).collect())
    }
}

fn check_string_array(array: &dyn Array) -> Result<()> {
    if is_string_type(array.data_type()) {
        Ok(())
    } else {
        Err(Error::invalid_data(
            None,
            format!(
                "detection needs a string column (Utf8, LargeUtf8 or Utf8View), found {}; cast it first",
                array.data_type()
            ),
        ))
    }
}

fn chunk_ranges(len: usize) -> Vec<(usize, usize)> {
    (0..len)
        .step_by(CHUNK_ROWS)
        .map(|start| (start, CHUNK_ROWS.min(len - start)))
        .collect()
}

/// Byte offset of character `index` of `text` (`text.len()` for one past the end).
fn byte_of_char(text: &str, index: usize) -> Option<usize> {
    text.char_indices()
        .map(|(b, _)| b)
        .chain(std::iter::once(text.len()))
        .nth(index)
}

/// Turn an external recognizer's character spans for one value into findings.
fn external_findings(
    text: &str,
    row: u64,
    spans: &[Span],
    first_extra: usize,
    extra: &mut Vec<String>,
    detector: &Detector,
    out: &mut Vec<Finding>,
) -> Result<()> {
    for span in spans {
        let bytes = byte_of_char(text, span.start).zip(byte_of_char(text, span.end));
        let Some((start, end)) = bytes.filter(|(s, e)| s < e) else {
            return Err(Error::invalid_data(
                None,
                format!("the external recognizer returned an empty span or one outside the value of row {row}"),
            ));
        };
        if !(span.score.is_finite() && (0.0..=1.0).contains(&span.score)) {
            return Err(Error::invalid_data(
                None,
                format!("the external recognizer returned a score outside 0..=1 for row {row}"),
            ));
        }
        let entity = match detector.entity_index(&span.entity) {
            Some(i) => i,
            None => match extra.iter().position(|e| *e == span.entity) {
                Some(i) => first_extra + i,
                None => {
                    extra.push(span.entity.clone());
                    first_extra + extra.len() - 1
                }
            },
        };
        out.push(Finding {
            entity,
            start,
            end,
            score: span.score,
        });
    }
    Ok(())
}

fn detect_chunk(
    array: &dyn Array,
    detector: &Detector,
    first_row: u64,
    external: Option<&dyn ExternalRecognizer>,
) -> Result<RecordBatch> {
    let values = string_values(array)?;
    let external_spans = match external {
        Some(recognizer) => {
            let spans = recognizer.spans(&values)?;
            if spans.len() != values.len() {
                return Err(Error::invalid_data(
                    None,
                    format!(
                        "the external recognizer returned {} span lists for {} values",
                        spans.len(),
                        values.len()
                    ),
                ));
            }
            Some(spans)
        }
        None => None,
    };
    // One finding per row is the usual density of free text; vectors grow past it. Output
    // columns reuse the memory of dropped ones (see `recycle`).
    let mut rows: Vec<u64> = recycle::vec_with_capacity(values.len());
    let mut entities: Vec<usize> = Vec::with_capacity(values.len());
    let mut starts: Vec<u64> = recycle::vec_with_capacity(values.len());
    let mut ends: Vec<u64> = recycle::vec_with_capacity(values.len());
    let mut scores: Vec<f64> = recycle::floats_with_capacity(values.len());
    // Entities of the external recognizer that the detector does not know, numbered after it.
    let mut extra_entities: Vec<String> = Vec::new();
    let mut scratch = detector.scratch();
    let mut found = Vec::new();
    for (index, value) in values.iter().enumerate() {
        let Some(text) = value else { continue };
        let row = first_row + index as u64;
        detector.find_into(text, &mut scratch, &mut found);
        if let Some(spans) = external_spans
            .as_ref()
            .and_then(|s| s.get(index))
            .filter(|s| !s.is_empty())
        {
            external_findings(
                text,
                row,
                spans,
                detector.entities().len(),
                &mut extra_entities,
                detector,
                &mut found,
            )?;
            resolve_overlaps(&mut found);
        }
        for (finding, (start, end)) in found.iter().zip(char_offsets(text, &found)) {
            rows.push(row);
            entities.push(finding.entity);
            starts.push(start as u64);
            ends.push(end as u64);
            scores.push(finding.score);
        }
    }
    let name = |e: usize| {
        detector
            .entities()
            .get(e)
            .or_else(|| extra_entities.get(e - detector.entities().len()))
            .map_or("", String::as_str)
    };
    let name_bytes = entities.iter().map(|&e| name(e).len()).sum();
    let mut entity = StringBuilder::with_capacity(entities.len(), name_bytes);
    for &e in &entities {
        entity.append_value(name(e));
    }
    let words = |words: Vec<u64>| {
        let len = words.len();
        UInt64Array::new(ScalarBuffer::new(recycle::into_buffer(words), 0, len), None)
    };
    let score_count = scores.len();
    let scores = ScalarBuffer::new(recycle::floats_into_buffer(scores), 0, score_count);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(words(rows)),
        Arc::new(entity.finish()),
        Arc::new(words(starts)),
        Arc::new(words(ends)),
        Arc::new(Float64Array::new(scores, None)),
    ];
    Ok(RecordBatch::try_new(detect_schema(), columns)?)
}

/// Options for [`scan_with`].
#[derive(Default)]
pub struct ScanOptions<'a> {
    /// Scan at most this many rows (the first ones, across batches); `None` scans all.
    pub sample_rows: Option<usize>,
    /// Worker threads (`None`: one per CPU).
    pub threads: Option<usize>,
    /// Cancellation and progress.
    pub control: Option<&'a RunControl>,
}

/// One entity found in one column.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EntityScan {
    /// Entity name.
    pub entity: String,
    /// Findings in total (a value may hold several).
    pub matches: u64,
    /// Non-null values holding at least one finding.
    pub values_with_match: u64,
    /// `values_with_match` over the column's non-null values scanned.
    pub fraction: f64,
    /// Fraction of non-null values that are this entity and nothing else (a structured column).
    pub whole_value_fraction: f64,
    /// Operator suggested for this entity (see [`suggested_rule`]).
    pub suggested_op: &'static str,
}

/// The scan of one string column.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ColumnScan {
    /// Column name.
    pub column: String,
    /// Non-null values scanned.
    pub values: u64,
    /// Entities found, most frequent first (ties by name).
    pub entities: Vec<EntityScan>,
    /// `keep` (nothing found), the entity's own operator for a structured column (80% or more
    /// of the values are one entity), or `redact_entities` for free text.
    pub suggested_op: &'static str,
    /// The suggested rule as a policy fragment (key names are placeholders to replace).
    pub suggested_rule: serde_json::Value,
}

/// What [`scan`] found; never holds a matched value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScanReport {
    /// Rows scanned (after sampling).
    pub rows_scanned: u64,
    /// One entry per string column, in schema order.
    pub columns: Vec<ColumnScan>,
    /// Columns skipped because they are not strings.
    pub skipped_columns: Vec<String>,
}

/// The column rule suggested for values that are `entity` (key names are placeholders).
pub fn suggested_rule(entity: &str) -> serde_json::Value {
    use serde_json::json;
    match entity {
        recognizers::EMAIL | recognizers::IPV4 | recognizers::IPV6 => {
            json!({"op": "hash", "key": "pseudonyms"})
        }
        recognizers::CREDIT_CARD => json!({"op": "mask", "keep_last": 4, "keep_separators": true}),
        recognizers::PHONE => json!({"op": "mask", "keep_last": 2, "keep_separators": true}),
        recognizers::IBAN => json!({"op": "tokenize", "key": "tokens"}),
        recognizers::US_SSN | recognizers::URL | recognizers::DATE => json!({"op": "redact"}),
        e if SECRET_ENTITIES.contains(&e) => json!({"op": "redact"}),
        _ => json!({"op": "redact"}),
    }
}

fn op_of(rule: &serde_json::Value) -> &'static str {
    match rule.get("op").and_then(|op| op.as_str()) {
        Some("hash") => "hash",
        Some("mask") => "mask",
        Some("tokenize") => "tokenize",
        Some("redact_entities") => "redact_entities",
        Some("keep") => "keep",
        _ => "redact",
    }
}

#[derive(Default, Clone)]
struct Counts {
    matches: u64,
    values_with_match: u64,
    whole_values: u64,
}

/// Scan the string columns of `batches` with all CPUs; see the module documentation.
pub fn scan(
    batches: &[RecordBatch],
    detector: &Detector,
    sample_rows: Option<usize>,
) -> Result<ScanReport> {
    scan_with(
        batches,
        detector,
        &ScanOptions {
            sample_rows,
            ..Default::default()
        },
    )
}

/// [`scan`] with a thread count and cancellation.
pub fn scan_with(
    batches: &[RecordBatch],
    detector: &Detector,
    options: &ScanOptions<'_>,
) -> Result<ScanReport> {
    let Some(schema) = batches.first().map(|b| b.schema()) else {
        return Ok(ScanReport {
            rows_scanned: 0,
            columns: Vec::new(),
            skipped_columns: Vec::new(),
        });
    };
    if batches
        .iter()
        .any(|b| b.schema().fields() != schema.fields())
    {
        return Err(Error::invalid_data(
            None,
            "the batches to scan do not share one schema",
        ));
    }
    // Work units: (column, batch, start, len), rows limited to the sample.
    let mut budget = options.sample_rows.unwrap_or(usize::MAX);
    let mut row_ranges = Vec::new();
    for (b, batch) in batches.iter().enumerate() {
        let take = batch.num_rows().min(budget);
        budget -= take;
        for (start, len) in chunk_ranges(take) {
            row_ranges.push((b, start, len));
        }
    }
    let rows_scanned = row_ranges.iter().map(|r| r.2 as u64).sum();
    let string_columns: Vec<usize> = (0..schema.fields().len())
        .filter(|i| is_string_type(schema.field(*i).data_type()))
        .collect();
    let units: Vec<(usize, usize, usize, usize)> = string_columns
        .iter()
        .flat_map(|c| row_ranges.iter().map(move |(b, s, l)| (*c, *b, *s, *l)))
        .collect();
    let run = |&(column, batch, start, len): &(usize, usize, usize, usize)| -> Result<(usize, u64, Vec<Counts>)> {
        if let Some(control) = options.control {
            control.check()?;
        }
        let slice = batches[batch].column(column).slice(start, len);
        let counted = count_chunk(slice.as_ref(), detector).map_err(|e| e.in_column(schema.field(column).name()))?;
        Ok((column, counted.0, counted.1))
    };
    let parts: Vec<(usize, u64, Vec<Counts>)> = if units.len() <= 1 {
        units.iter().map(run).collect::<Result<_>>()?
    } else {
        parallel::pool(options.threads)?
            .install(|| units.par_iter().map(run).collect::<Result<_>>())?
    };
    let entity_count = detector.entities().len();
    let columns = string_columns
        .iter()
        .map(|&column| {
            let mut values = 0u64;
            let mut totals = vec![Counts::default(); entity_count];
            for (_, non_null, counts) in parts.iter().filter(|p| p.0 == column) {
                values += non_null;
                for (total, c) in totals.iter_mut().zip(counts) {
                    total.matches += c.matches;
                    total.values_with_match += c.values_with_match;
                    total.whole_values += c.whole_values;
                }
            }
            column_scan(schema.field(column).name(), values, &totals, detector)
        })
        .collect();
    let skipped_columns = schema
        .fields()
        .iter()
        .filter(|f| !is_string_type(f.data_type()))
        .map(|f| f.name().clone())
        .collect();
    Ok(ScanReport {
        rows_scanned,
        columns,
        skipped_columns,
    })
}

fn fraction(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn column_scan(name: &str, values: u64, totals: &[Counts], detector: &Detector) -> ColumnScan {
    let mut entities: Vec<EntityScan> = totals
        .iter()
        .enumerate()
        .filter(|(_, c)| c.matches > 0)
        .map(|(i, c)| {
            let entity = detector.entity_name(i).to_owned();
            let rule = suggested_rule(&entity);
            EntityScan {
                suggested_op: op_of(&rule),
                entity,
                matches: c.matches,
                values_with_match: c.values_with_match,
                fraction: fraction(c.values_with_match, values),
                whole_value_fraction: fraction(c.whole_values, values),
            }
        })
        .collect();
    entities.sort_by(|a, b| {
        b.values_with_match
            .cmp(&a.values_with_match)
            .then(a.entity.cmp(&b.entity))
    });
    let suggested_rule = match entities.first() {
        None => serde_json::json!({"op": "keep"}),
        Some(top) if top.whole_value_fraction >= 0.8 => suggested_rule(&top.entity),
        Some(_) => serde_json::json!({
            "op": "redact_entities",
            "entities": entities.iter().map(|e| e.entity.clone()).collect::<Vec<_>>(),
        }),
    };
    ColumnScan {
        column: name.to_owned(),
        values,
        suggested_op: op_of(&suggested_rule),
        entities,
        suggested_rule,
    }
}

/// Non-null values and per-entity counts of one chunk.
fn count_chunk(array: &dyn Array, detector: &Detector) -> Result<(u64, Vec<Counts>)> {
    let values = string_values(array)?;
    let mut counts = vec![Counts::default(); detector.entities().len()];
    let mut seen = vec![false; counts.len()];
    let mut scratch = detector.scratch();
    let mut found = Vec::new();
    let mut non_null = 0u64;
    for text in values.iter().flatten() {
        non_null += 1;
        detector.spans_into(text, &mut scratch, &mut found);
        seen.iter_mut().for_each(|s| *s = false);
        for f in &found {
            counts[f.entity].matches += 1;
            seen[f.entity] = true;
        }
        for (count, seen) in counts.iter_mut().zip(&seen) {
            count.values_with_match += u64::from(*seen);
        }
        if let [only] = found.as_slice() {
            if text[..only.start].trim().is_empty() && text[only.end..].trim().is_empty() {
                counts[only.entity].whole_values += 1;
            }
        }
    }
    Ok((non_null, counts))
}

impl ScanReport {
    /// The report as a table: one row per (column, entity), plus a row with an empty entity for
    /// columns where nothing was found.
    pub fn to_record_batch(&self) -> Result<RecordBatch> {
        let mut column = StringBuilder::new();
        let mut entity = StringBuilder::new();
        let mut values = UInt64Builder::new();
        let mut matches = UInt64Builder::new();
        let mut with_match = UInt64Builder::new();
        let mut fraction = Float64Builder::new();
        let mut suggested = StringBuilder::new();
        for c in &self.columns {
            if c.entities.is_empty() {
                column.append_value(&c.column);
                entity.append_null();
                values.append_value(c.values);
                matches.append_value(0);
                with_match.append_value(0);
                fraction.append_value(0.0);
                suggested.append_value(c.suggested_op);
            }
            for e in &c.entities {
                column.append_value(&c.column);
                entity.append_value(&e.entity);
                values.append_value(c.values);
                matches.append_value(e.matches);
                with_match.append_value(e.values_with_match);
                fraction.append_value(e.fraction);
                suggested.append_value(e.suggested_op);
            }
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("column", DataType::Utf8, false),
            Field::new("entity", DataType::Utf8, true),
            Field::new("values", DataType::UInt64, false),
            Field::new("matches", DataType::UInt64, false),
            Field::new("values_with_match", DataType::UInt64, false),
            Field::new("fraction", DataType::Float64, false),
            Field::new("suggested_op", DataType::Utf8, false),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(column.finish()),
            Arc::new(entity.finish()),
            Arc::new(values.finish()),
            Arc::new(matches.finish()),
            Arc::new(with_match.finish()),
            Arc::new(fraction.finish()),
            Arc::new(suggested.finish()),
        ];
        Ok(RecordBatch::try_new(schema, columns)?)
    }

    /// The report as JSON (for `amlguard scan --json`).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

impl fmt::Display for ScanReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "scanned {} rows", self.rows_scanned)?;
        for c in &self.columns {
            writeln!(
                f,
                "\n{} ({} values) -> suggested: {}",
                c.column, c.values, c.suggested_op
            )?;
            if c.entities.is_empty() {
                writeln!(f, "  nothing found")?;
                continue;
            }
            writeln!(
                f,
                "  {:<20} {:>10} {:>10} {:>9}  suggested",
                "entity", "matches", "values", "fraction"
            )?;
            for e in &c.entities {
                writeln!(
                    f,
                    "  {:<20} {:>10} {:>10} {:>8.1}%  {}",
                    e.entity,
                    e.matches,
                    e.values_with_match,
                    e.fraction * 100.0,
                    e.suggested_op
                )?;
            }
        }
        if !self.skipped_columns.is_empty() {
            writeln!(
                f,
                "\nnot scanned (not strings): {}",
                self.skipped_columns.join(", ")
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, UInt64Type};
    use arrow_array::{Int32Array, StringArray};
    use arrow_buffer::{Buffer, OffsetBuffer, ScalarBuffer};

    fn detector() -> Detector {
        Detector::builtin().unwrap()
    }

    fn spans(batch: &RecordBatch) -> Vec<(u64, String, u64, u64)> {
        let rows = batch.column(0).as_primitive::<UInt64Type>();
        let entities = batch.column(1).as_string::<i32>();
        let starts = batch.column(2).as_primitive::<UInt64Type>();
        let ends = batch.column(3).as_primitive::<UInt64Type>();
        (0..batch.num_rows())
            .map(|i| {
                (
                    rows.value(i),
                    entities.value(i).to_owned(),
                    starts.value(i),
                    ends.value(i),
                )
            })
            .collect()
    }

    #[test]
    fn detect_over_every_string_type_with_char_offsets() {
        let input = StringArray::from(vec![
            Some("é 🙂 jane@example.com"),
            None,
            Some(""),
            Some("ssn 123-45-6789"),
        ]);
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(input.clone()),
            arrow_cast::cast(&input, &DataType::LargeUtf8).unwrap(),
            arrow_cast::cast(&input, &DataType::Utf8View).unwrap(),
        ];
        for array in arrays {
            let out = detect(array.as_ref(), &detector()).unwrap();
            assert_eq!(out.schema(), detect_schema());
            assert_eq!(
                spans(&out),
                vec![(0, "EMAIL".into(), 4, 20), (3, "US_SSN".into(), 4, 15)]
            );
            let scores = out.column(4).as_primitive::<Float64Type>();
            assert!(scores
                .iter()
                .all(|s| s.is_some_and(|s| (0.0..=1.0).contains(&s))));
        }
    }

    #[test]
    fn output_is_the_same_for_any_thread_count() {
        let batches = crate::datasets::synthetic_pii(40_000, 3).unwrap();
        let notes = batches[0].column_by_name("note").unwrap();
        let detector = detector();
        let on = |threads| DetectOptions {
            threads: Some(threads),
            first_row: 7,
            ..Default::default()
        };
        let one = detect_with(notes.as_ref(), &detector, &on(1)).unwrap();
        let two = detect_with(notes.as_ref(), &detector, &on(2)).unwrap();
        assert_eq!(one, two);
        assert!(one.num_rows() > 40_000);
        assert_eq!(one.column(0).as_primitive::<UInt64Type>().value(0), 7);
        // The per-work-unit batches the binding hands on are the same rows, in order.
        let parts = detect_batches(&[notes.as_ref()], &detector, &on(2)).unwrap();
        assert_eq!(parts.len(), 40_000usize.div_ceil(CHUNK_ROWS));
        assert_eq!(concat_batches(&detect_schema(), &parts).unwrap(), one);
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let offsets = OffsetBuffer::new(ScalarBuffer::from(vec![0i32, 2]));
        // SAFETY: deliberately builds an invalid array to check that it is refused.
        let bad = unsafe {
            StringArray::new_unchecked(offsets, Buffer::from_vec(vec![0xffu8, 0xfe]), None)
        };
        assert!(matches!(
            detect(&bad, &detector()),
            Err(Error::InvalidData { .. })
        ));
        let ints = Int32Array::from(vec![1]);
        assert!(matches!(
            detect(&ints, &detector()),
            Err(Error::InvalidData { .. })
        ));
        // Per-unit batches: a bad chunk among good ones fails the whole call; no rows, no batches.
        let good = StringArray::from(vec!["a@example.com"]);
        let options = DetectOptions::default();
        assert!(matches!(
            detect_batches(&[&good, &ints], &detector(), &options),
            Err(Error::InvalidData { .. })
        ));
        let empty = StringArray::from(Vec::<&str>::new());
        assert!(detect_batches(&[&empty], &detector(), &options)
            .unwrap()
            .is_empty());
        assert_eq!(detect(&empty, &detector()).unwrap().num_rows(), 0);
    }

    struct Names;
    impl ExternalRecognizer for Names {
        fn spans(&self, values: &[Option<&str>]) -> Result<Vec<Vec<Span>>> {
            Ok(values
                .iter()
                .map(|v| {
                    v.and_then(|t| {
                        t.chars()
                            .collect::<Vec<_>>()
                            .windows(4)
                            .position(|w| w.iter().collect::<String>() == "Zoë ")
                    })
                    .map(|at| {
                        vec![Span {
                            entity: "PERSON".into(),
                            start: at,
                            end: at + 3,
                            score: 0.9,
                        }]
                    })
                    .unwrap_or_default()
                })
                .collect())
        }
    }

    #[test]
    fn external_spans_are_merged() {
        let input = StringArray::from(vec![Some("é Zoë wrote from zoe@example.com"), Some("none")]);
        let out = detect_with(
            &input,
            &detector(),
            &DetectOptions {
                external: Some(&Names),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            spans(&out),
            vec![(0, "PERSON".into(), 2, 5), (0, "EMAIL".into(), 17, 32)]
        );

        struct Broken;
        impl ExternalRecognizer for Broken {
            fn spans(&self, values: &[Option<&str>]) -> Result<Vec<Vec<Span>>> {
                Ok(values
                    .iter()
                    .map(|_| {
                        vec![Span {
                            entity: "X".into(),
                            start: 2,
                            end: 99,
                            score: 0.5,
                        }]
                    })
                    .collect())
            }
        }
        let err = detect_with(
            &input,
            &detector(),
            &DetectOptions {
                external: Some(&Broken),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("row 0"), "{err}");
    }

    /// Throughput on 1M synthetic notes; run with
    /// `cargo test --release --lib throughput -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn throughput() {
        use crate::policy::Policy;
        let batches = crate::datasets::synthetic_pii(1_000_000, 1).unwrap();
        let notes: Vec<RecordBatch> = batches
            .iter()
            .map(|b| b.project(&[b.schema().index_of("note").unwrap()]).unwrap())
            .collect();
        let bytes: usize = notes
            .iter()
            .map(|b| b.column(0).as_string::<i32>().value_data().len())
            .sum();
        let rows: usize = notes.iter().map(RecordBatch::num_rows).sum();
        println!(
            "{rows} notes, {:.1} MB of text, {:.0} bytes per note",
            bytes as f64 / 1e6,
            bytes as f64 / rows as f64
        );
        let detector = Detector::builtin().unwrap();
        let report = |what: &str, threads: usize, seconds: f64| {
            println!(
                "{what:<40} threads={threads} {:>8.1} MB/s {:>10.0} rows/s",
                bytes as f64 / seconds / 1e6,
                rows as f64 / seconds
            );
        };
        for threads in [1, 2] {
            let started = std::time::Instant::now();
            let mut findings = 0;
            for (i, batch) in notes.iter().enumerate() {
                let options = DetectOptions {
                    threads: Some(threads),
                    first_row: (i * crate::datasets::BLOCK_ROWS) as u64,
                    ..Default::default()
                };
                findings += detect_with(batch.column(0).as_ref(), &detector, &options)
                    .unwrap()
                    .num_rows();
            }
            report(
                &format!("detect (all 15 entities, {findings} findings)"),
                threads,
                started.elapsed().as_secs_f64(),
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let keys = crate::keys::LocalKeyring::open(dir.path()).unwrap();
        let policies = [
            (
                "redact_entities 5 labels",
                r#"{"columns": {"note": {"op": "redact_entities", "entities": ["EMAIL", "PHONE", "CREDIT_CARD", "US_SSN", "IPV4"]}}}"#,
            ),
            (
                "redact_entities all labels",
                r#"{"columns": {"note": {"op": "redact_entities"}}}"#,
            ),
        ];
        for (name, policy) in policies {
            let compiled = Policy::from_json(policy)
                .unwrap()
                .compile(notes[0].schema(), &keys)
                .unwrap();
            for threads in [1, 2] {
                let started = std::time::Instant::now();
                let out = compiled
                    .apply_batches_on(&notes, 0, &RunControl::new(), Some(threads))
                    .unwrap();
                assert_eq!(out.iter().map(RecordBatch::num_rows).sum::<usize>(), rows);
                report(name, threads, started.elapsed().as_secs_f64());
            }
        }
    }

    #[test]
    fn scan_classifies_columns_without_keeping_values() {
        let batches = crate::datasets::synthetic_pii(5_000, 1).unwrap();
        let report = scan(&batches, &detector(), Some(2_000)).unwrap();
        assert_eq!(report.rows_scanned, 2_000);
        let column = |name: &str| report.columns.iter().find(|c| c.column == name).unwrap();
        assert_eq!(column("email").suggested_op, "hash");
        assert_eq!(column("card_number").suggested_op, "mask");
        assert_eq!(column("ssn").suggested_op, "redact");
        assert_eq!(column("iban").entities[0].entity, "IBAN");
        assert_eq!(column("note").suggested_op, "redact_entities");
        assert_eq!(column("name").suggested_op, "keep");
        assert!(report.skipped_columns.contains(&"age".to_owned()));
        let email = &column("email").entities[0];
        assert!(email.fraction > 0.95 && email.fraction <= 1.0);
        let text = format!("{report}\n{}", report.to_json());
        let first_email = batches[0]
            .column_by_name("email")
            .unwrap()
            .as_string::<i32>()
            .value(0);
        assert!(!text.contains(first_email));
        assert_eq!(report.to_record_batch().unwrap().num_columns(), 7);
    }
}
