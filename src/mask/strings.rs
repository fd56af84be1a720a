//! Shared machinery for operators over Arrow string columns.
//!
//! [`map_strings`] walks a Utf8, LargeUtf8 or Utf8View array, hands each non-null value to a
//! closure that appends the replacement to an output buffer, and builds an array of the same
//! string type with the same null positions. Output for Utf8/LargeUtf8 is written straight into
//! one values buffer (no per-value allocation).

use std::sync::Arc;

use arrow_array::builder::StringViewBuilder;
use arrow_array::{
    Array, ArrayRef, GenericStringArray, LargeStringArray, OffsetSizeTrait, StringArray,
    StringViewArray,
};
use arrow_buffer::{OffsetBuffer, ScalarBuffer};
use arrow_schema::DataType;

use crate::error::{Error, Result};
use crate::mask::recycle;

/// True for the three Arrow string types.
pub(crate) fn is_string_type(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// Fail with a typed error if a string array holds bytes that are not valid UTF-8. Arrays that
/// arrive over the C data interface are not validated by the importer, so every operator that
/// reads string values checks them first.
///
/// Only the array's own values are checked: a chunk sliced from a large array shares its
/// values buffer, and checking the whole buffer for each chunk made one big array cost
/// quadratic time.
pub(crate) fn validate_utf8(array: &dyn Array) -> Result<()> {
    let invalid = |detail: String| {
        Error::invalid_data(
            None,
            format!("string column holds invalid UTF-8 or malformed offsets ({detail}); decode or cast it to valid UTF-8 first"),
        )
    };
    // Buffer sizes and the offsets' outer bounds first (cheap), so the values can be read.
    array
        .to_data()
        .validate()
        .map_err(|err| invalid(err.to_string()))?;
    match array.data_type() {
        DataType::Utf8 => validate_offsets_and_utf8(downcast::<StringArray>(array)?),
        DataType::LargeUtf8 => validate_offsets_and_utf8(downcast::<LargeStringArray>(array)?),
        _ => array
            .to_data()
            .validate_full()
            .map_err(|err| Error::invalid_data(None, err.to_string())),
    }
    .map_err(|err| match err {
        Error::InvalidData { message, .. } => invalid(message),
        other => other,
    })
}

/// Offsets never decrease, stay inside the values buffer and fall on character boundaries, and
/// the bytes between the first and last offset are UTF-8.
fn validate_offsets_and_utf8<O: OffsetSizeTrait>(array: &GenericStringArray<O>) -> Result<()> {
    let offsets = array.value_offsets();
    let values = array.value_data();
    let bad = |message: &str| Err(Error::invalid_data(None, message.to_owned()));
    let (Some(first), Some(last)) = (offsets.first(), offsets.last()) else {
        return Ok(());
    };
    let (Some(first), Some(last)) = (first.to_usize(), last.to_usize()) else {
        return bad("an offset is negative");
    };
    if first > last || last > values.len() {
        return bad("an offset points outside the values buffer");
    }
    // One pass over the offsets. A character boundary is the end of the checked bytes or a
    // byte that is not a UTF-8 continuation byte, which can be told before the bytes are
    // known to be UTF-8.
    let mut previous = first;
    for offset in offsets.iter() {
        let offset = offset.to_usize().unwrap_or(usize::MAX);
        if offset < previous || offset > last {
            return bad("offsets decrease or point outside the values buffer");
        }
        if offset < last && (values[offset] as i8) < -64 {
            return bad("an offset splits a character");
        }
        previous = offset;
    }
    let checked = &values[first..last];
    // The vector check first (most columns are valid); the standard one only to say where
    // the first invalid byte is.
    if simdutf8::basic::from_utf8(checked).is_err() {
        let valid_up_to = std::str::from_utf8(checked).map_or_else(|e| e.valid_up_to(), |_| 0);
        return Err(Error::invalid_data(
            None,
            format!("invalid UTF-8 at byte {}", first + valid_up_to),
        ));
    }
    Ok(())
}

/// Apply `transform` to every non-null value, appending its output; nulls stay null.
/// `transform` gets the value's row index within `array`, the value and the output buffer.
pub(crate) fn map_strings<F>(array: &dyn Array, transform: F) -> Result<ArrayRef>
where
    F: FnMut(usize, &str, &mut String) -> Result<()>,
{
    validate_utf8(array)?;
    match array.data_type() {
        DataType::Utf8 => map_generic::<i32, F>(downcast::<StringArray>(array)?, transform),
        DataType::LargeUtf8 => {
            map_generic::<i64, F>(downcast::<LargeStringArray>(array)?, transform)
        }
        DataType::Utf8View => map_view(downcast::<StringViewArray>(array)?, transform),
        other => Err(Error::invalid_data(
            None,
            format!("expected a string column, found {other}"),
        )),
    }
}

/// Apply `transform` to every non-null value of a string array and produce a Utf8 array
/// (used where the output type is always Utf8, e.g. labels).
pub(crate) fn for_each_string<F>(array: &dyn Array, mut visit: F) -> Result<()>
where
    F: FnMut(usize, Option<&str>) -> Result<()>,
{
    validate_utf8(array)?;
    match array.data_type() {
        DataType::Utf8 => {
            let a = downcast::<StringArray>(array)?;
            (0..a.len()).try_for_each(|i| visit(i, a.is_valid(i).then(|| a.value(i))))
        }
        DataType::LargeUtf8 => {
            let a = downcast::<LargeStringArray>(array)?;
            (0..a.len()).try_for_each(|i| visit(i, a.is_valid(i).then(|| a.value(i))))
        }
        DataType::Utf8View => {
            let a = downcast::<StringViewArray>(array)?;
            (0..a.len()).try_for_each(|i| visit(i, a.is_valid(i).then(|| a.value(i))))
        }
        other => Err(Error::invalid_data(
            None,
            format!("expected a string column, found {other}"),
        )),
    }
}

/// The values of a string array (`None` for nulls), borrowed, after checking UTF-8: for
/// callers that hand a whole chunk of values to someone else (an external recognizer).
pub(crate) fn string_values(array: &dyn Array) -> Result<Vec<Option<&str>>> {
    validate_utf8(array)?;
    match array.data_type() {
        DataType::Utf8 => Ok(downcast::<StringArray>(array)?.iter().collect()),
        DataType::LargeUtf8 => Ok(downcast::<LargeStringArray>(array)?.iter().collect()),
        DataType::Utf8View => Ok(downcast::<StringViewArray>(array)?.iter().collect()),
        other => Err(Error::invalid_data(
            None,
            format!("expected a string column, found {other}"),
        )),
    }
}

pub(crate) fn downcast<T: 'static>(array: &dyn Array) -> Result<&T> {
    array.as_any().downcast_ref::<T>().ok_or_else(|| {
        Error::invalid_data(
            None,
            format!("unexpected array layout for type {}", array.data_type()),
        )
    })
}

fn map_generic<O, F>(array: &GenericStringArray<O>, mut transform: F) -> Result<ArrayRef>
where
    O: OffsetSizeTrait,
    F: FnMut(usize, &str, &mut String) -> Result<()>,
{
    // The values of this array only: a chunk sliced from a large array shares its whole values
    // buffer, and reserving that much for every chunk took the whole column's size per chunk.
    let input_offsets = array.value_offsets();
    let own_bytes = input_offsets[input_offsets.len() - 1].as_usize() - input_offsets[0].as_usize();
    let mut values = recycle::string_with_capacity(own_bytes);
    let mut offsets: Vec<O> = Vec::with_capacity(array.len() + 1);
    offsets.push(O::usize_as(0));
    for row in 0..array.len() {
        if array.is_valid(row) {
            transform(row, array.value(row), &mut values)?;
        }
        let end = O::from_usize(values.len()).ok_or_else(|| {
            Error::invalid_data(
                None,
                "masked column outgrew its offset type; use a LargeUtf8 column",
            )
        })?;
        offsets.push(end);
    }
    Ok(Arc::new(string_array(
        offsets,
        values,
        array.nulls().cloned(),
    )))
}

fn map_view<F>(array: &StringViewArray, mut transform: F) -> Result<ArrayRef>
where
    F: FnMut(usize, &str, &mut String) -> Result<()>,
{
    let mut builder = StringViewBuilder::with_capacity(array.len());
    let mut scratch = String::new();
    for row in 0..array.len() {
        if array.is_valid(row) {
            scratch.clear();
            transform(row, array.value(row), &mut scratch)?;
            builder.append_value(&scratch);
        } else {
            builder.append_null();
        }
    }
    Ok(Arc::new(builder.finish()))
}

/// A string array over `values` cut at `offsets`, which must start at 0 and each be
/// `values.len()` as it was after a whole `&str` was appended (so every cut is at a character
/// boundary); `nulls`, if any, has one entry per cut after the first.
fn string_array<O: OffsetSizeTrait>(
    offsets: Vec<O>,
    values: String,
    nulls: Option<arrow_buffer::NullBuffer>,
) -> GenericStringArray<O> {
    // Checks that offsets are non-negative and never decrease (panics otherwise, a bug here).
    let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
    assert!(offsets.last().and_then(|end| end.to_usize()) == Some(values.len()));
    assert!(nulls.as_ref().is_none_or(|n| n.len() == offsets.len() - 1));
    let values = recycle::into_buffer(values.into_bytes());
    // SAFETY: `values` came from a `String`, so it is valid UTF-8, and every offset is a
    // character boundary (see above); offsets are monotonic and end at the buffer's end, and
    // `nulls` matches the row count (both checked above). Re-validating UTF-8 here cost about
    // 1 % of a redaction pass.
    unsafe { GenericStringArray::<O>::new_unchecked(offsets, values, nulls) }
}

/// Build a Utf8 array of `len` rows from optional values produced by `value_at`.
pub(crate) fn build_utf8<F>(len: usize, mut value_at: F) -> Result<ArrayRef>
where
    F: FnMut(usize, &mut String) -> Result<bool>,
{
    let mut values = String::new();
    let mut offsets: Vec<i32> = Vec::with_capacity(len + 1);
    let mut validity = arrow_buffer::BooleanBufferBuilder::new(len);
    offsets.push(0);
    for row in 0..len {
        let present = value_at(row, &mut values)?;
        validity.append(present);
        let end = i32::try_from(values.len()).map_err(|_| {
            Error::invalid_data(None, "output column exceeds 2 GiB of text in one chunk")
        })?;
        offsets.push(end);
    }
    let nulls = arrow_buffer::NullBuffer::new(validity.finish());
    let nulls = (nulls.null_count() > 0).then_some(nulls);
    Ok(Arc::new(string_array(offsets, values, nulls)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::builder::StringBuilder;
    use arrow_buffer::Buffer;

    #[test]
    fn keeps_type_and_nulls_for_every_string_type() {
        let input = StringArray::from(vec![Some("ab"), None, Some("")]);
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(input.clone()),
            arrow_cast::cast(&input, &DataType::LargeUtf8).unwrap(),
            arrow_cast::cast(&input, &DataType::Utf8View).unwrap(),
        ];
        for array in arrays {
            let out = map_strings(array.as_ref(), |_, v, buf| {
                buf.push_str(&v.to_uppercase());
                buf.push('!');
                Ok(())
            })
            .unwrap();
            assert_eq!(out.data_type(), array.data_type());
            let out = arrow_cast::cast(&out, &DataType::Utf8).unwrap();
            let out = out.as_any().downcast_ref::<StringArray>().unwrap();
            assert_eq!(out.value(0), "AB!");
            assert!(out.is_null(1));
            assert_eq!(out.value(2), "!");
        }
    }

    #[test]
    fn sliced_arrays_are_mapped_from_their_offset() {
        let mut builder = StringBuilder::new();
        for v in ["a", "b", "c", "d"] {
            builder.append_value(v);
        }
        let array = builder.finish().slice(1, 2);
        let out = map_strings(&array, |_, v, buf| {
            buf.push_str(v);
            Ok(())
        })
        .unwrap();
        let out = out.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(out.iter().collect::<Vec<_>>(), vec![Some("b"), Some("c")]);
    }

    #[test]
    fn a_slice_reserves_its_own_values_only() {
        let big = StringArray::from_iter_values(std::iter::repeat_n("0123456789", 100_000));
        let chunk = big.slice(50_000, 10);
        let out = map_strings(&chunk, |_, v, buf| {
            buf.push_str(v);
            Ok(())
        })
        .unwrap();
        let out = out.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(out.len(), 10);
        assert_eq!(out.value(9), "0123456789");
        // 100 bytes of output; before, each chunk reserved the whole megabyte buffer.
        assert!(
            out.values().capacity() < 1024,
            "{} bytes reserved",
            out.values().capacity()
        );
    }

    #[test]
    fn invalid_utf8_is_a_typed_error() {
        let offsets = OffsetBuffer::new(ScalarBuffer::from(vec![0i32, 2]));
        let values = Buffer::from_vec(vec![0xffu8, 0xfe]);
        // SAFETY: deliberately builds an invalid array to check that it is refused.
        let bad = unsafe { StringArray::new_unchecked(offsets, values, None) };
        let err = map_strings(&bad, |_, _, _| Ok(())).unwrap_err();
        assert!(matches!(err, Error::InvalidData { .. }), "{err}");
    }

    #[test]
    fn only_the_slice_values_are_checked() {
        // "ab", an invalid byte, "é" (two bytes), "cd".
        let values = Buffer::from_vec(vec![b'a', b'b', 0xff, 0xc3, 0xa9, b'c', b'd']);
        let offsets = OffsetBuffer::new(ScalarBuffer::from(vec![0i32, 2, 3, 5, 7]));
        // SAFETY: deliberately invalid, to check what is refused.
        let array = unsafe { StringArray::new_unchecked(offsets, values.clone(), None) };
        let upper = |array: &StringArray| {
            map_strings(array, |_, v, buf| {
                buf.push_str(&v.to_uppercase());
                Ok(())
            })
        };
        let message = |result: Result<ArrayRef>| result.unwrap_err().to_string();
        assert!(message(upper(&array)).contains("invalid UTF-8 at byte 2"));
        assert!(upper(&array.slice(0, 1)).is_ok());
        let tail = upper(&array.slice(2, 2)).unwrap();
        let tail = tail.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(tail.iter().collect::<Vec<_>>(), vec![Some("É"), Some("CD")]);
        assert!(message(upper(&array.slice(1, 2))).contains("invalid UTF-8"));
        // "aé" cut inside "é": valid UTF-8 as a whole, but not as two values.
        let values = Buffer::from_vec(vec![b'a', 0xc3, 0xa9]);
        let offsets = OffsetBuffer::new(ScalarBuffer::from(vec![0i32, 2, 3]));
        // SAFETY: as above.
        let split = unsafe { StringArray::new_unchecked(offsets, values, None) };
        assert!(message(upper(&split)).contains("splits a character"));
    }

    #[test]
    fn malformed_offsets_are_a_typed_error() {
        let values = Buffer::from_vec(b"abcdef".to_vec());
        let cases: [(&[i32], &str); 3] = [
            (&[0, 4, 2, 6], "offsets decrease or point outside"),
            (&[0, -1, 6], "offsets decrease or point outside"),
            (&[0, 7, 6], "offsets decrease or point outside"),
        ];
        for (raw, expected) in cases {
            // SAFETY: deliberately invalid, to check that it is refused.
            let array = unsafe {
                let offsets = OffsetBuffer::new_unchecked(ScalarBuffer::from(raw.to_vec()));
                StringArray::new_unchecked(offsets, values.clone(), None)
            };
            let err = map_strings(&array, |_, _, _| Ok(())).unwrap_err();
            assert!(matches!(err, Error::InvalidData { .. }), "{err}");
            assert!(err.to_string().contains(expected), "{raw:?}: {err}");
        }
    }
}
