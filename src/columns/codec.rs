//! The byte encoding of each supported Arrow type's values, as encrypted.
//!
//! | Arrow type | bytes of one value |
//! |---|---|
//! | Utf8, LargeUtf8, Utf8View | the UTF-8 bytes |
//! | Binary, LargeBinary, BinaryView, FixedSizeBinary(n) | the bytes |
//! | Boolean | one byte, `0x00` or `0x01` |
//! | Dictionary(_, T) | as T (the column decrypts to plain T) |
//! | Int*, UInt*, Float16/32/64, Date32/64, Time*, Timestamp(*, tz), Duration(*), Interval(*), Decimal32/64/128/256 | the native value, little-endian, the type's width (e.g. 8 bytes for Int64, 16 for Decimal128) |
//!
//! Decryption checks each value's length against the type's width (and UTF-8 validity for
//! strings), so a value that authenticates yet does not fit its type is an error naming the
//! column, never a garbled value. Nested types (lists, structs, maps) are not supported: encrypt
//! their leaf columns, or serialise them first.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{make_array, Array, ArrayRef, BinaryArray, BooleanArray, StringArray};
use arrow_buffer::{BooleanBufferBuilder, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_data::ArrayData;
use arrow_schema::DataType;

use crate::error::{Error, Result};

/// Whether values of `data_type` can be encrypted.
pub(crate) fn is_supported(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_)
            | DataType::Boolean
    ) || (data_type.is_primitive() && data_type.primitive_width().is_some())
}

/// Read access to one array's values as bytes.
pub(crate) enum Values<'a> {
    Utf8(&'a arrow_array::StringArray),
    LargeUtf8(&'a arrow_array::LargeStringArray),
    Utf8View(&'a arrow_array::StringViewArray),
    Binary(&'a arrow_array::BinaryArray),
    LargeBinary(&'a arrow_array::LargeBinaryArray),
    BinaryView(&'a arrow_array::BinaryViewArray),
    FixedSizeBinary(&'a arrow_array::FixedSizeBinaryArray),
    Boolean(&'a BooleanArray),
    Fixed {
        array: &'a dyn Array,
        data: ArrayData,
        width: usize,
    },
}

impl<'a> Values<'a> {
    pub(crate) fn new(array: &'a ArrayRef, column: &str) -> Result<Self> {
        Ok(match array.data_type() {
            DataType::Utf8 => Values::Utf8(array.as_string::<i32>()),
            DataType::LargeUtf8 => Values::LargeUtf8(array.as_string::<i64>()),
            DataType::Utf8View => Values::Utf8View(array.as_string_view()),
            DataType::Binary => Values::Binary(array.as_binary::<i32>()),
            DataType::LargeBinary => Values::LargeBinary(array.as_binary::<i64>()),
            DataType::BinaryView => Values::BinaryView(array.as_binary_view()),
            DataType::FixedSizeBinary(_) => Values::FixedSizeBinary(array.as_fixed_size_binary()),
            DataType::Boolean => Values::Boolean(array.as_boolean()),
            other => match other.primitive_width() {
                Some(width) if other.is_primitive() => Values::Fixed {
                    array: array.as_ref(),
                    data: array.to_data(),
                    width,
                },
                _ => return Err(unsupported(column, other)),
            },
        })
    }

    /// Call `f` with row `row`'s bytes; `None` (without calling `f`) when the value is null.
    #[inline]
    pub(crate) fn with_value<R>(&self, row: usize, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        macro_rules! bytes {
            ($array:expr, $value:expr) => {
                if $array.is_null(row) {
                    None
                } else {
                    Some(f($value))
                }
            };
        }
        match self {
            Values::Utf8(a) => bytes!(a, a.value(row).as_bytes()),
            Values::LargeUtf8(a) => bytes!(a, a.value(row).as_bytes()),
            Values::Utf8View(a) => bytes!(a, a.value(row).as_bytes()),
            Values::Binary(a) => bytes!(a, a.value(row)),
            Values::LargeBinary(a) => bytes!(a, a.value(row)),
            Values::BinaryView(a) => bytes!(a, a.value(row)),
            Values::FixedSizeBinary(a) => bytes!(a, a.value(row)),
            Values::Boolean(a) => bytes!(a, &[u8::from(a.value(row))]),
            Values::Fixed { array, data, width } => {
                if array.is_null(row) {
                    return None;
                }
                let start = (data.offset() + row) * width;
                Some(f(&data.buffers()[0].as_slice()[start..start + width]))
            }
        }
    }
}

pub(crate) fn unsupported(column: &str, data_type: &DataType) -> Error {
    Error::ColumnType {
        column: column.to_owned(),
        op: "encrypt_columns".into(),
        data_type: data_type.to_string(),
        hint: "encrypt string, binary, boolean, numeric, decimal or temporal columns; encrypt the leaf columns of nested types".into(),
    }
}

/// Decrypted values of one chunk: concatenated bytes, their end offsets, and validity.
#[derive(Default)]
pub(crate) struct Decoded {
    pub(crate) bytes: Vec<u8>,
    pub(crate) ends: Vec<usize>,
    pub(crate) valid: Vec<bool>,
}

impl Decoded {
    pub(crate) fn with_capacity(rows: usize, bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(rows),
            valid: Vec::with_capacity(rows),
        }
    }

    /// Close the current row: valid when `valid`, else null (its bytes, if any, are dropped).
    pub(crate) fn finish_row(&mut self, start: usize, valid: bool) {
        if !valid {
            self.bytes.truncate(start);
        }
        self.ends.push(self.bytes.len());
        self.valid.push(valid);
    }

    fn nulls(&self) -> Option<NullBuffer> {
        if self.valid.iter().all(|v| *v) {
            return None;
        }
        let mut builder = BooleanBufferBuilder::new(self.valid.len());
        for valid in &self.valid {
            builder.append(*valid);
        }
        Some(NullBuffer::new(builder.finish()))
    }

    fn value(&self, row: usize) -> &[u8] {
        let start = if row == 0 { 0 } else { self.ends[row - 1] };
        &self.bytes[start..self.ends[row]]
    }

    /// Build an array of `data_type` from the decrypted bytes.
    pub(crate) fn into_array(self, data_type: &DataType, column: &str) -> Result<ArrayRef> {
        let rows = self.ends.len();
        let nulls = self.nulls();
        let wrong_width = |width: usize| {
            Error::invalid_data(
                Some(column),
                format!("a decrypted value is not {width} bytes long, as type {data_type} needs"),
            )
        };
        match data_type {
            DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_) => {
                if let DataType::FixedSizeBinary(width) = data_type {
                    let width = usize::try_from(*width).map_err(|_| wrong_width(0))?;
                    if (0..rows).any(|row| self.valid[row] && self.value(row).len() != width) {
                        return Err(wrong_width(width));
                    }
                }
                let total = self.bytes.len();
                let mut offsets = Vec::with_capacity(rows + 1);
                let binary: ArrayRef = if i32::try_from(total).is_ok() {
                    offsets.push(0i32);
                    offsets.extend(self.ends.iter().map(|end| *end as i32));
                    let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
                    let values = Buffer::from_vec(self.bytes);
                    if matches!(
                        data_type,
                        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                    ) {
                        Arc::new(StringArray::try_new(offsets, values, nulls).map_err(|_| {
                            Error::invalid_data(
                                Some(column),
                                "a decrypted value is not valid UTF-8",
                            )
                        })?)
                    } else {
                        Arc::new(BinaryArray::try_new(offsets, values, nulls)?)
                    }
                } else {
                    let offsets64: Vec<i64> = std::iter::once(0)
                        .chain(self.ends.iter().map(|end| *end as i64))
                        .collect();
                    let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets64));
                    let values = Buffer::from_vec(self.bytes);
                    if matches!(
                        data_type,
                        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                    ) {
                        Arc::new(
                            arrow_array::LargeStringArray::try_new(offsets, values, nulls)
                                .map_err(|_| {
                                    Error::invalid_data(
                                        Some(column),
                                        "a decrypted value is not valid UTF-8",
                                    )
                                })?,
                        )
                    } else {
                        Arc::new(arrow_array::LargeBinaryArray::try_new(
                            offsets, values, nulls,
                        )?)
                    }
                };
                if binary.data_type() == data_type {
                    Ok(binary)
                } else {
                    Ok(arrow_cast::cast(&binary, data_type)?)
                }
            }
            DataType::Boolean => {
                let mut values = BooleanBufferBuilder::new(rows);
                for row in 0..rows {
                    let bit = if self.valid[row] {
                        match self.value(row) {
                            [0] => false,
                            [1] => true,
                            _ => {
                                return Err(Error::invalid_data(
                                    Some(column),
                                    "a decrypted boolean is not one byte 0 or 1",
                                ))
                            }
                        }
                    } else {
                        false
                    };
                    values.append(bit);
                }
                Ok(Arc::new(BooleanArray::new(values.finish(), nulls)))
            }
            other => {
                let width = other
                    .primitive_width()
                    .filter(|_| other.is_primitive())
                    .ok_or_else(|| unsupported(column, other))?;
                let mut values = Vec::with_capacity(rows * width);
                for row in 0..rows {
                    if self.valid[row] {
                        let value = self.value(row);
                        if value.len() != width {
                            return Err(wrong_width(width));
                        }
                        values.extend_from_slice(value);
                    } else {
                        values.extend(std::iter::repeat_n(0u8, width));
                    }
                }
                let data = ArrayData::builder(other.clone())
                    .len(rows)
                    .add_buffer(Buffer::from_vec(values))
                    .nulls(nulls)
                    .build()?;
                Ok(make_array(data))
            }
        }
    }
}
