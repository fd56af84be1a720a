//! `date_shift`: move each subject's dates by a secret, consistent number of days.
//!
//! The offset for a row is derived from the value of a subject column (for example a patient
//! id) with HMAC-SHA256 under a keyring key (purpose label `date_shift`), so all of a subject's
//! dates move together and intervals between them are preserved, while the offset cannot be
//! guessed without the key. Offsets lie in `[-max_days, -1] ∪ [1, max_days]`: never zero.
//! A row whose subject is null gets a null date: no consistent offset exists for it.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Date64Type, Int64Type};
use arrow_array::{Array, ArrayRef, PrimitiveArray};
use arrow_buffer::NullBuffer;
use arrow_schema::{DataType, TimeUnit};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::strings::is_string_type;
use super::{ChunkContext, ColumnOperator};
use crate::error::{Error, Result};
use crate::keys::SecretKey;

/// Keyed, per-subject consistent date shifting.
pub struct DateShift {
    keyed_mac: Hmac<Sha256>,
    max_days: u32,
    subject_column: String,
}

/// Types `date_shift` can shift.
pub fn supports_type(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _)
    )
}

/// Types a subject column may have.
pub fn supports_subject_type(data_type: &DataType) -> bool {
    is_string_type(data_type) || data_type.is_integer()
}

impl DateShift {
    /// Build from a keyring key, the largest shift in days (>= 1) and the subject column's name.
    pub fn new(key: &SecretKey, max_days: u32, subject_column: &str) -> Result<Self> {
        if max_days == 0 {
            return Err(Error::policy("max_days must be at least 1"));
        }
        let subkey = key.derive::<32>("date_shift");
        let keyed_mac = Hmac::<Sha256>::new_from_slice(subkey.as_slice())
            .map_err(|_| Error::policy("HMAC key has an invalid length"))?;
        Ok(Self {
            keyed_mac,
            max_days,
            subject_column: subject_column.to_owned(),
        })
    }

    /// The shift, in days, for a subject (given as text: integers as their decimal form).
    pub fn offset_days(&self, subject: &str) -> i64 {
        let mut mac = self.keyed_mac.clone();
        mac.update(subject.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        let max = u64::from(self.max_days);
        // Map uniformly (bias below 2^-32 for any max_days) onto 2*max non-zero offsets.
        let r = u64::from_be_bytes(first) % (2 * max);
        let r = r as i64;
        let max = max as i64;
        if r < max {
            r - max
        } else {
            r - max + 1
        }
    }

    fn offsets(&self, context: &ChunkContext<'_>) -> Result<Vec<Option<i64>>> {
        let subjects = context
            .batch
            .column_by_name(&self.subject_column)
            .ok_or_else(|| Error::ColumnNotFound {
                column: self.subject_column.clone(),
                available: context
                    .batch
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let subjects = arrow_cast::cast(subjects, &DataType::Utf8)?;
        let mut offsets = Vec::with_capacity(subjects.len());
        super::strings::for_each_string(subjects.as_ref(), |_, subject| {
            offsets.push(subject.map(|s| self.offset_days(s)));
            Ok(())
        })?;
        Ok(offsets)
    }
}

impl ColumnOperator for DateShift {
    fn name(&self) -> &'static str {
        "date_shift"
    }
    fn introduces_nulls(&self) -> bool {
        true
    }
    fn apply(&self, input: &ArrayRef, context: &ChunkContext<'_>) -> Result<ArrayRef> {
        let offsets = self.offsets(context)?;
        let per_day: i64 = match input.data_type() {
            DataType::Date32 => 1,
            DataType::Date64 => 86_400_000,
            DataType::Timestamp(TimeUnit::Second, _) => 86_400,
            DataType::Timestamp(TimeUnit::Millisecond, _) => 86_400_000,
            DataType::Timestamp(TimeUnit::Microsecond, _) => 86_400_000_000,
            DataType::Timestamp(TimeUnit::Nanosecond, _) => 86_400_000_000_000,
            other => {
                return Err(Error::invalid_data(
                    None,
                    format!("date_shift cannot shift {other}"),
                ))
            }
        };
        let shifted_values = |value: i64, row: usize| -> Option<i64> {
            offsets[row].and_then(|days| value.checked_add(days.checked_mul(per_day)?))
        };
        let subject_nulls = NullBuffer::from_iter(offsets.iter().map(Option::is_some));
        let nulls = NullBuffer::union(input.nulls(), Some(&subject_nulls));
        let overflow = || Error::invalid_data(None, "a shifted date is out of range");
        let out: ArrayRef = match input.data_type() {
            DataType::Date32 => {
                let dates = input.as_primitive::<Date32Type>();
                let mut values = Vec::with_capacity(dates.len());
                for (row, value) in dates.values().iter().enumerate() {
                    let keep = nulls.as_ref().is_none_or(|n| n.is_valid(row));
                    values.push(if keep {
                        shifted_values(i64::from(*value), row)
                            .and_then(|v| i32::try_from(v).ok())
                            .ok_or_else(overflow)?
                    } else {
                        0
                    });
                }
                Arc::new(PrimitiveArray::<Date32Type>::new(values.into(), nulls))
            }
            _ => {
                let raw = input.to_data();
                let ints = PrimitiveArray::<Int64Type>::from(
                    raw.into_builder().data_type(DataType::Int64).build()?,
                );
                let mut values = Vec::with_capacity(ints.len());
                for (row, value) in ints.values().iter().enumerate() {
                    let keep = nulls.as_ref().is_none_or(|n| n.is_valid(row));
                    values.push(if keep {
                        shifted_values(*value, row).ok_or_else(overflow)?
                    } else {
                        0
                    });
                }
                let shifted = PrimitiveArray::<Int64Type>::new(values.into(), nulls);
                let data = shifted
                    .into_data()
                    .into_builder()
                    .data_type(input.data_type().clone())
                    .build()?;
                if matches!(input.data_type(), DataType::Date64) {
                    Arc::new(PrimitiveArray::<Date64Type>::from(data))
                } else {
                    arrow_array::make_array(data)
                }
            }
        };
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyId;
    use arrow_array::{Date32Array, RecordBatch, StringArray};
    use arrow_schema::{Field, Schema};
    use zeroize::Zeroizing;

    fn op(max_days: u32) -> DateShift {
        let key = SecretKey::new(
            KeyId {
                name: "d".into(),
                version: 1,
            },
            Zeroizing::new([9u8; 32]),
        );
        DateShift::new(&key, max_days, "patient").unwrap()
    }

    #[test]
    fn offsets_are_nonzero_bounded_and_consistent() {
        let shift = op(30);
        let mut seen = std::collections::HashSet::new();
        for i in 0..5000 {
            let days = shift.offset_days(&i.to_string());
            assert!(days != 0 && (-30..=30).contains(&days));
            assert_eq!(days, shift.offset_days(&i.to_string()));
            seen.insert(days);
        }
        assert_eq!(seen.len(), 60, "every non-zero offset is reachable");
    }

    #[test]
    fn shifts_by_subject_and_nulls_rows_without_subject() {
        let shift = op(10);
        let schema = Arc::new(Schema::new(vec![
            Field::new("patient", DataType::Utf8, true),
            Field::new("visit", DataType::Date32, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![
                    Some("p1"),
                    Some("p1"),
                    None,
                    Some("p2"),
                ])),
                Arc::new(Date32Array::from(vec![
                    Some(100),
                    Some(110),
                    Some(120),
                    None,
                ])),
            ],
        )
        .unwrap();
        let context = ChunkContext {
            row_offset: 0,
            batch: &batch,
        };
        let out = shift.apply(batch.column(1), &context).unwrap();
        let out = out.as_primitive::<Date32Type>();
        let days = shift.offset_days("p1") as i32;
        assert_eq!(out.value(0), 100 + days);
        assert_eq!(out.value(1) - out.value(0), 10, "intervals are kept");
        assert!(out.is_null(2));
        assert!(out.is_null(3));
    }
}
