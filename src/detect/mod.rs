//! PII and secret detection in free text.
//!
//! - [`recognizers`]: what is looked for (built-in entities, user recognizers);
//! - [`validators`]: the checks a candidate must pass (Luhn, mod-97, SSN rules, ...);
//! - [`engine`]: the one-pass multi-pattern [`Detector`] that finds them in a string;
//! - [`scan`]: [`detect`] over Arrow string arrays (one row per finding) and [`scan`] of record
//!   batches into a [`ScanReport`] (which columns hold which entities, how often);
//! - [`redact`]: the `redact_entities` column operator that replaces findings in place;
//! - [`labelled`]: synthetic notes with ground-truth spans, to measure precision and recall.
//!
//! Offsets: the engine works in byte offsets; everything it reports to users is in characters
//! (Unicode scalar values), which is what Python's `str` slicing uses. Nothing here stores,
//! prints or returns a matched value except the redacted output itself.
//!
//! Named-entity recognition (person names, places) needs a model and is not done here; an
//! [`ExternalRecognizer`] lets a caller add spans from one (spaCy, transformers) batch-wise.
//!
//! ```
//! use std::sync::Arc;
//! use amlguard::detect::{detect, Detector};
//! use arrow_array::{Array, StringArray};
//!
//! let detector = Detector::builtin().unwrap();
//! let notes = StringArray::from(vec![Some("call +44 20 7946 0018"), None, Some("nothing here")]);
//! let spans = detect(&notes, &detector).unwrap();
//! assert_eq!(spans.num_rows(), 1);
//! ```

mod candidates;
pub mod engine;
pub mod labelled;
pub mod recognizers;
pub mod redact;
pub mod scan;
mod start_filter;
pub mod validators;
mod walk;

pub use engine::{Detector, Finding, Scratch};
pub use recognizers::Recognizer;
pub use redact::{EntityAction, RedactEntities};
pub use scan::{
    detect, detect_batches, detect_chunked, detect_schema, detect_with, scan, scan_with,
    DetectOptions, ScanOptions, ScanReport,
};
pub use validators::Validator;

use crate::error::Result;

/// A span found by an [`ExternalRecognizer`], in character (Unicode scalar) offsets.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    /// Entity name (`PERSON`, `LOCATION`, ...).
    pub entity: String,
    /// First character of the span.
    pub start: usize,
    /// One past the last character of the span.
    pub end: usize,
    /// Confidence in `0..=1`.
    pub score: f64,
}

/// A source of spans the built-in recognizers cannot find, such as a NER model.
///
/// It is called once per chunk of rows (thousands of values), never once per row, with the
/// chunk's values (`None` for nulls), and returns one list of spans per value, in character
/// offsets. Its spans are merged with the built-in findings and overlaps are resolved as for
/// any finding (highest score, then longest, then earliest). Chunks may be processed on several
/// threads at once, so an implementation that needs a lock (Python's GIL) takes it inside
/// `spans`.
///
/// ```
/// use amlguard::detect::{ExternalRecognizer, Span};
/// struct Names;
/// impl ExternalRecognizer for Names {
///     fn spans(&self, values: &[Option<&str>]) -> amlguard::Result<Vec<Vec<Span>>> {
///         Ok(values.iter().map(|v| match v.and_then(|t| t.find("Ada")) {
///             Some(at) => vec![Span { entity: "PERSON".into(), start: at, end: at + 3, score: 0.9 }],
///             None => vec![],
///         }).collect())
///     }
/// }
/// ```
pub trait ExternalRecognizer: Send + Sync {
    /// One list of spans per value of `batch_values`, in the same order.
    fn spans(&self, batch_values: &[Option<&str>]) -> Result<Vec<Vec<Span>>>;
}
