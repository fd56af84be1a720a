//! `generalize`: coarser values that keep analytic use.
//!
//! - numbers into buckets of a fixed `width` (`37` -> `"30-39"`, or the bucket floor `30` when
//!   the policy asks for `output: floor`, which keeps the column's type), or into buckets between
//!   given `edges` with optional `labels`;
//! - dates and timestamps truncated to the `year`, `month` or `day` (type kept; timestamps are
//!   truncated in UTC);
//! - strings cut to a `prefix` of N characters, optionally padded back to their length
//!   (`"02139"` -> `"021"` or `"021**"`).

use std::fmt::Write as _;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef, ArrowPrimitiveType, PrimitiveArray};
use arrow_schema::{DataType, TimeUnit};
use chrono::{Datelike, NaiveDate};

use super::strings::{build_utf8, map_strings};
use super::{ChunkContext, ColumnOperator};
use crate::error::{Error, Result};

/// What a numeric bucket becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BucketOutput {
    /// A text label such as `30-39` (column becomes Utf8).
    Label,
    /// The bucket's lower bound, in the column's own type.
    Floor,
}

/// Calendar unit to truncate dates and timestamps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatePart {
    /// January 1st.
    Year,
    /// The first of the month.
    Month,
    /// Midnight (UTC) of the day.
    Day,
}

/// One way to generalise.
#[derive(Clone, Debug)]
pub enum Generalization {
    /// Fixed-width numeric buckets.
    Width {
        /// Bucket width (a whole number for integer columns).
        width: f64,
        /// Label or floor.
        output: BucketOutput,
    },
    /// Buckets between ascending edges: below the first, between each pair, from the last up.
    Edges {
        /// Strictly ascending bucket edges.
        edges: Vec<f64>,
        /// One label per bucket (`edges.len() + 1`).
        labels: Vec<String>,
    },
    /// Truncate dates / timestamps.
    Truncate(DatePart),
    /// Keep the first N characters of a string.
    Prefix {
        /// Characters kept.
        chars: usize,
        /// Pad back to the original length with this character.
        pad: Option<char>,
    },
}

/// Default labels for edge buckets: `<e0`, `[e0, e1)`, ..., `>=en`.
pub fn default_edge_labels(edges: &[f64]) -> Vec<String> {
    let mut labels = Vec::with_capacity(edges.len() + 1);
    if let (Some(first), Some(last)) = (edges.first(), edges.last()) {
        labels.push(format!("<{first}"));
        for pair in edges.windows(2) {
            labels.push(format!("[{}, {})", pair[0], pair[1]));
        }
        labels.push(format!(">={last}"));
    }
    labels
}

/// The `generalize` operator.
pub struct Generalize {
    how: Generalization,
}

impl Generalize {
    /// Build one; parameters are checked by the policy compiler.
    pub fn new(how: Generalization) -> Self {
        Self { how }
    }

    fn bucket_numbers<T>(&self, input: &dyn Array) -> Result<ArrayRef>
    where
        T: ArrowPrimitiveType,
        T::Native: num_like::ToF64,
    {
        let values = input.as_primitive::<T>();
        let integer = input.data_type().is_integer();
        match &self.how {
            Generalization::Width {
                width,
                output: BucketOutput::Floor,
            } => {
                let width = *width;
                let out: PrimitiveArray<T> = values.try_unary(|v| {
                    let floor = (num_like::ToF64::to_f64(v) / width).floor() * width;
                    num_like::ToF64::from_f64(floor).ok_or_else(|| {
                        arrow_schema::ArrowError::ComputeError(
                            "bucket floor does not fit the column type".into(),
                        )
                    })
                })?;
                Ok(Arc::new(out))
            }
            Generalization::Width {
                width,
                output: BucketOutput::Label,
            } => build_utf8(values.len(), |row, out| {
                if values.is_null(row) {
                    return Ok(false);
                }
                let v = num_like::ToF64::to_f64(values.value(row));
                if v.is_nan() {
                    return Ok(false);
                }
                let low = (v / width).floor() * width;
                if integer {
                    let _ = write!(out, "{}-{}", low, low + width - 1.0);
                } else {
                    let _ = write!(out, "[{}, {})", low, low + width);
                }
                Ok(true)
            }),
            Generalization::Edges { edges, labels } => build_utf8(values.len(), |row, out| {
                if values.is_null(row) {
                    return Ok(false);
                }
                let v = num_like::ToF64::to_f64(values.value(row));
                if v.is_nan() {
                    return Ok(false);
                }
                let bucket = edges.partition_point(|edge| *edge <= v);
                out.push_str(&labels[bucket]);
                Ok(true)
            }),
            _ => Err(Error::invalid_data(None, "numeric generalisation expected")),
        }
    }

    fn truncate_dates(&self, input: &dyn Array, part: DatePart) -> Result<ArrayRef> {
        let truncate_day = |day: i64| -> Option<i64> {
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
            let date = epoch.checked_add_signed(chrono::Duration::days(day))?;
            let truncated = match part {
                DatePart::Year => NaiveDate::from_ymd_opt(date.year(), 1, 1)?,
                DatePart::Month => NaiveDate::from_ymd_opt(date.year(), date.month(), 1)?,
                DatePart::Day => date,
            };
            Some(truncated.signed_duration_since(epoch).num_days())
        };
        let out_of_range =
            || arrow_schema::ArrowError::ComputeError("date outside the calendar range".into());
        match input.data_type() {
            DataType::Date32 => {
                let out: PrimitiveArray<Date32Type> =
                    input.as_primitive::<Date32Type>().try_unary(|d| {
                        truncate_day(i64::from(d))
                            .and_then(|v| i32::try_from(v).ok())
                            .ok_or_else(out_of_range)
                    })?;
                Ok(Arc::new(out))
            }
            DataType::Date64 => {
                const MS_PER_DAY: i64 = 86_400_000;
                let out: PrimitiveArray<Date64Type> =
                    input.as_primitive::<Date64Type>().try_unary(|ms| {
                        truncate_day(ms.div_euclid(MS_PER_DAY))
                            .and_then(|d| d.checked_mul(MS_PER_DAY))
                            .ok_or_else(out_of_range)
                    })?;
                Ok(Arc::new(out))
            }
            DataType::Timestamp(unit, _) => {
                let per_day: i64 = match unit {
                    TimeUnit::Second => 86_400,
                    TimeUnit::Millisecond => 86_400_000,
                    TimeUnit::Microsecond => 86_400_000_000,
                    TimeUnit::Nanosecond => 86_400_000_000_000,
                };
                let raw = input.to_data();
                let ints = PrimitiveArray::<Int64Type>::from(
                    raw.clone()
                        .into_builder()
                        .data_type(DataType::Int64)
                        .build()?,
                );
                let out: PrimitiveArray<Int64Type> = ints.try_unary(|t| {
                    truncate_day(t.div_euclid(per_day))
                        .and_then(|d| d.checked_mul(per_day))
                        .ok_or_else(out_of_range)
                })?;
                let out = out
                    .into_data()
                    .into_builder()
                    .data_type(input.data_type().clone())
                    .build()?;
                Ok(arrow_array::make_array(out))
            }
            other => Err(Error::invalid_data(
                None,
                format!("cannot truncate {other} to a date part"),
            )),
        }
    }
}

/// Whether `generalize` with `how` can take a column of `data_type`.
pub fn supports_type(how: &Generalization, data_type: &DataType) -> bool {
    match how {
        Generalization::Width { .. } | Generalization::Edges { .. } => {
            data_type.is_integer() || data_type.is_floating()
        }
        Generalization::Truncate(_) => matches!(
            data_type,
            DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _)
        ),
        Generalization::Prefix { .. } => super::strings::is_string_type(data_type),
    }
}

impl ColumnOperator for Generalize {
    fn name(&self) -> &'static str {
        "generalize"
    }
    fn output_type(&self, input: &DataType) -> DataType {
        match &self.how {
            Generalization::Width {
                output: BucketOutput::Label,
                ..
            }
            | Generalization::Edges { .. } => DataType::Utf8,
            _ => input.clone(),
        }
    }
    fn introduces_nulls(&self) -> bool {
        // NaN has no bucket and becomes null.
        matches!(
            self.how,
            Generalization::Width { .. } | Generalization::Edges { .. }
        )
    }
    fn apply(&self, input: &ArrayRef, _: &ChunkContext<'_>) -> Result<ArrayRef> {
        let array = input.as_ref();
        match &self.how {
            Generalization::Truncate(part) => self.truncate_dates(array, *part),
            Generalization::Prefix { chars, pad } => map_strings(array, |_, value, out| {
                let mut kept = 0;
                for c in value.chars() {
                    if kept < *chars {
                        out.push(c);
                        kept += 1;
                    } else if let Some(pad) = pad {
                        out.push(*pad);
                    } else {
                        break;
                    }
                }
                Ok(())
            }),
            _ => match array.data_type() {
                DataType::Int8 => self.bucket_numbers::<Int8Type>(array),
                DataType::Int16 => self.bucket_numbers::<Int16Type>(array),
                DataType::Int32 => self.bucket_numbers::<Int32Type>(array),
                DataType::Int64 => self.bucket_numbers::<Int64Type>(array),
                DataType::UInt8 => self.bucket_numbers::<UInt8Type>(array),
                DataType::UInt16 => self.bucket_numbers::<UInt16Type>(array),
                DataType::UInt32 => self.bucket_numbers::<UInt32Type>(array),
                DataType::UInt64 => self.bucket_numbers::<UInt64Type>(array),
                DataType::Float32 => self.bucket_numbers::<Float32Type>(array),
                DataType::Float64 => self.bucket_numbers::<Float64Type>(array),
                other => Err(Error::invalid_data(
                    None,
                    format!("cannot bucket values of type {other}"),
                )),
            },
        }
    }
}

/// Conversions between the numeric column types and f64, shared by `generalize` and `noise`.
pub(crate) mod num_like {
    /// A native numeric type that converts to and (checked) from f64.
    pub trait ToF64: Copy {
        /// Widen to f64.
        fn to_f64(self) -> f64;
        /// Narrow from f64, `None` when out of range or not finite for integers.
        fn from_f64(value: f64) -> Option<Self>;
        /// Narrow from f64, saturating at the type's range (NaN becomes 0 for integers).
        fn saturating_from_f64(value: f64) -> Self;
    }

    macro_rules! int_to_f64 {
        ($($t:ty),*) => {$(
            impl ToF64 for $t {
                fn to_f64(self) -> f64 { self as f64 }
                fn from_f64(value: f64) -> Option<Self> {
                    (value.is_finite() && value >= <$t>::MIN as f64 && value <= <$t>::MAX as f64)
                        .then(|| value as $t)
                }
                fn saturating_from_f64(value: f64) -> Self { value as $t }
            }
        )*};
    }
    int_to_f64!(i8, i16, i32, i64, u8, u16, u32, u64);

    impl ToF64 for f64 {
        fn to_f64(self) -> f64 {
            self
        }
        fn from_f64(value: f64) -> Option<Self> {
            Some(value)
        }
        fn saturating_from_f64(value: f64) -> Self {
            value
        }
    }

    impl ToF64 for f32 {
        fn to_f64(self) -> f64 {
            f64::from(self)
        }
        fn from_f64(value: f64) -> Option<Self> {
            Some(value as f32)
        }
        fn saturating_from_f64(value: f64) -> Self {
            value as f32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{
        Date32Array, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    };

    fn run(how: Generalization, input: ArrayRef) -> ArrayRef {
        let batch = RecordBatch::new_empty(Arc::new(arrow_schema::Schema::empty()));
        let context = ChunkContext {
            row_offset: 0,
            batch: &batch,
        };
        Generalize::new(how).apply(&input, &context).unwrap()
    }

    #[test]
    fn integer_width_labels_and_floors() {
        let ages: ArrayRef = Arc::new(Int64Array::from(vec![Some(37), None, Some(-1), Some(40)]));
        let labels = run(
            Generalization::Width {
                width: 10.0,
                output: BucketOutput::Label,
            },
            ages.clone(),
        );
        let labels = labels.as_string::<i32>();
        assert_eq!(labels.value(0), "30-39");
        assert!(labels.is_null(1));
        assert_eq!(labels.value(2), "-10--1");
        assert_eq!(labels.value(3), "40-49");
        let floors = run(
            Generalization::Width {
                width: 10.0,
                output: BucketOutput::Floor,
            },
            ages,
        );
        let floors = floors.as_primitive::<Int64Type>();
        assert_eq!(floors.values().as_ref(), &[30, 0, -10, 40][..]);
        assert!(floors.is_null(1));
    }

    #[test]
    fn float_edges_with_default_labels() {
        let salaries: ArrayRef =
            Arc::new(Float64Array::from(vec![5.0, 50_000.0, 250_000.0, f64::NAN]));
        let edges = vec![10_000.0, 100_000.0];
        let out = run(
            Generalization::Edges {
                labels: default_edge_labels(&edges),
                edges,
            },
            salaries,
        );
        let out = out.as_string::<i32>();
        assert_eq!(out.value(0), "<10000");
        assert_eq!(out.value(1), "[10000, 100000)");
        assert_eq!(out.value(2), ">=100000");
        assert!(out.is_null(3));
    }

    #[test]
    fn dates_and_timestamps_truncate() {
        // 2001-09-09 is day 11574; 2001-09-01 is 11566; 2001-01-01 is 11323.
        let dates: ArrayRef = Arc::new(Date32Array::from(vec![Some(11574), None, Some(-1)]));
        let month = run(Generalization::Truncate(DatePart::Month), dates.clone());
        assert_eq!(
            month.as_primitive::<Date32Type>().values().as_ref(),
            &[11566, 0, -31][..]
        );
        let year = run(Generalization::Truncate(DatePart::Year), dates);
        assert_eq!(year.as_primitive::<Date32Type>().value(0), 11323);
        let micros = 1_000_000_000_000_000i64; // 2001-09-09T01:46:40Z
        let ts: ArrayRef =
            Arc::new(TimestampMicrosecondArray::from(vec![micros]).with_timezone("UTC"));
        let day = run(Generalization::Truncate(DatePart::Day), ts.clone());
        assert_eq!(day.data_type(), ts.data_type());
        let day = day
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(day.value(0), 11574 * 86_400_000_000);
    }

    #[test]
    fn string_prefix_with_and_without_pad() {
        let zips: ArrayRef = Arc::new(StringArray::from(vec![Some("02139"), None, Some("9")]));
        let cut = run(
            Generalization::Prefix {
                chars: 3,
                pad: None,
            },
            zips.clone(),
        );
        let cut = cut.as_string::<i32>();
        assert_eq!(cut.value(0), "021");
        assert_eq!(cut.value(2), "9");
        let padded = run(
            Generalization::Prefix {
                chars: 3,
                pad: Some('*'),
            },
            zips,
        );
        assert_eq!(padded.as_string::<i32>().value(0), "021**");
    }
}
