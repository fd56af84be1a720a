//! Output buffers of string operators and span tables, kept for the next call once their
//! arrays are dropped.
//!
//! A masked column is new memory on every call. Returned to the system allocator, a freed
//! column of hundreds of megabytes goes back to the kernel, and the next call's output is
//! faulted in and zeroed again page by page (about a tenth of a redaction pass from Python).
//! Buffers of at least [`MIN_KEPT`] bytes are instead put on a shelf when their last array is
//! dropped, up to a limit (`AMLGUARD_BUFFER_CACHE_MIB`, default [`DEFAULT_LIMIT_MIB`]; 0 turns
//! it off), and freed once unused for [`KEEP_FOR`]. A kept buffer still holds the bytes of
//! the output it served, as freed memory does, but they are never exposed: a buffer is
//! emptied before it is handed out again, and an array exposes only bytes its operator wrote.

use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arrow_buffer::{ArrowNativeType, Buffer};

/// Smaller buffers come from the allocator's heap, where freed memory stays mapped.
pub(crate) const MIN_KEPT: usize = 256 * 1024;
/// What the shelf may hold when `AMLGUARD_BUFFER_CACHE_MIB` is unset.
pub(crate) const DEFAULT_LIMIT_MIB: usize = 256;
/// How long a buffer may sit unused on the shelf before it is freed.
pub(crate) const KEEP_FOR: Duration = Duration::from_secs(10);
const LIMIT_ENV: &str = "AMLGUARD_BUFFER_CACHE_MIB";

/// Element types of kept buffers: bytes (string values) and 8-byte words (integer and float
/// columns), each on its own list since an allocation is freed with the alignment it was made
/// with.
pub(crate) trait Kept: ArrowNativeType + std::panic::RefUnwindSafe {
    fn list(shelf: &mut Shelf) -> &mut Vec<(Vec<Self>, Instant)>;
}

impl Kept for u8 {
    fn list(shelf: &mut Shelf) -> &mut Vec<(Vec<u8>, Instant)> {
        &mut shelf.bytes
    }
}

impl Kept for u64 {
    fn list(shelf: &mut Shelf) -> &mut Vec<(Vec<u64>, Instant)> {
        &mut shelf.words
    }
}

/// Buffers kept for reuse, with when each was put back.
pub(crate) struct Shelf {
    limit: usize,
    bytes: Vec<(Vec<u8>, Instant)>,
    words: Vec<(Vec<u64>, Instant)>,
    held: usize,
}

fn size_of_capacity<T>(buffer: &Vec<T>) -> usize {
    buffer.capacity() * size_of::<T>()
}

impl Shelf {
    pub(crate) fn new(limit: usize) -> Self {
        Shelf {
            limit,
            bytes: Vec::new(),
            words: Vec::new(),
            held: 0,
        }
    }

    /// An empty buffer with room for at least `min` elements: the smallest kept one that fits
    /// and is at most twice `min` (a small request does not pin a large buffer), else a new
    /// one with its capacity rounded up so that requests of nearly the same size share it.
    pub(crate) fn take<T: Kept>(&mut self, min: usize, now: Instant) -> Vec<T> {
        self.expire(now);
        if !may_be_kept::<T>(min) || self.limit == 0 {
            return Vec::with_capacity(min);
        }
        let list = T::list(self);
        let best = list
            .iter()
            .enumerate()
            .filter(|(_, (buffer, _))| (min..=min.saturating_mul(2)).contains(&buffer.capacity()))
            .min_by_key(|(_, (buffer, _))| buffer.capacity())
            .map(|(index, _)| index);
        match best {
            Some(index) => {
                let (mut buffer, _) = list.swap_remove(index);
                self.held -= size_of_capacity(&buffer);
                buffer.clear();
                buffer
            }
            None => Vec::with_capacity(rounded_capacity(min)),
        }
    }

    /// Keep `buffer` if it is large enough and fits under the limit; else it is freed.
    pub(crate) fn give<T: Kept>(&mut self, buffer: Vec<T>, now: Instant) {
        self.expire(now);
        let size = size_of_capacity(&buffer);
        if size >= MIN_KEPT && self.held + size <= self.limit {
            self.held += size;
            T::list(self).push((buffer, now));
        }
    }

    /// Bytes held on the shelf.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.held
    }

    fn expire(&mut self, now: Instant) {
        self.held -= expire_list(&mut self.bytes, now) + expire_list(&mut self.words, now);
    }
}

/// Free the buffers of `list` unused for [`KEEP_FOR`]; the bytes they held.
fn expire_list<T>(list: &mut Vec<(Vec<T>, Instant)>, now: Instant) -> usize {
    let mut freed = 0;
    list.retain(|(buffer, since)| {
        let fresh = now.saturating_duration_since(*since) < KEEP_FOR;
        if !fresh {
            freed += size_of_capacity(buffer);
        }
        fresh
    });
    freed
}

/// Whether a kept buffer may serve a request for `min` elements: one of up to twice `min`
/// (a vector that grew once past its first capacity) is at least [`MIN_KEPT`] bytes.
fn may_be_kept<T>(min: usize) -> bool {
    min.saturating_mul(2 * size_of::<T>()) >= MIN_KEPT
}

/// `min` rounded up to a multiple of 1/32 of its next power of two (less than 1/16 more).
fn rounded_capacity(min: usize) -> usize {
    let step = (min.next_power_of_two() / 32).max(1);
    min.div_ceil(step).saturating_mul(step)
}

fn shelf() -> std::sync::MutexGuard<'static, Shelf> {
    static SHELF: OnceLock<Mutex<Shelf>> = OnceLock::new();
    SHELF
        .get_or_init(|| {
            let mib = std::env::var(LIMIT_ENV)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(DEFAULT_LIMIT_MIB);
            Mutex::new(Shelf::new(mib.saturating_mul(1024 * 1024)))
        })
        .lock()
        // A poisoned lock only means a panic elsewhere while it was held; the shelf stays
        // valid (every change to it is a push, a removal or a counter update).
        .unwrap_or_else(|p| p.into_inner())
}

/// An empty vector with room for at least `min` elements, reusing a kept buffer when one fits.
pub(crate) fn vec_with_capacity<T: Kept>(min: usize) -> Vec<T> {
    // No lock where no kept buffer could serve.
    if !may_be_kept::<T>(min) {
        return Vec::with_capacity(min);
    }
    shelf().take::<T>(min, Instant::now())
}

/// [`vec_with_capacity`] for string values.
pub(crate) fn string_with_capacity(min: usize) -> String {
    String::from_utf8(vec_with_capacity(min)).expect("an empty buffer is valid UTF-8")
}

/// [`vec_with_capacity`] for floats (kept with the 8-byte words).
pub(crate) fn floats_with_capacity(min: usize) -> Vec<f64> {
    let mut words = ManuallyDrop::new(vec_with_capacity::<u64>(min));
    // SAFETY: an empty vector whose allocation (if any) was made for `u64`, which has the
    // size and alignment of `f64`; `words` is not used or dropped after.
    unsafe { Vec::from_raw_parts(words.as_mut_ptr().cast::<f64>(), 0, words.capacity()) }
}

/// An Arrow buffer over `elements` that returns them to the shelf when its last user drops
/// it (if they are large enough to be kept).
pub(crate) fn into_buffer<T: Kept>(elements: Vec<T>) -> Buffer {
    if size_of_capacity(&elements) < MIN_KEPT {
        return Buffer::from_vec(elements);
    }
    let len = elements.len() * size_of::<T>();
    let ptr = NonNull::new(elements.as_ptr().cast::<u8>().cast_mut())
        .expect("a vector's pointer is not null");
    let owner = Arc::new(Returned(ManuallyDrop::new(elements)));
    // SAFETY: `ptr` points at `len` initialised bytes of the vector `owner` holds; moving the
    // vector into `owner` does not move its heap memory, and `owner` lives as long as the
    // buffer and every slice of it.
    unsafe { Buffer::from_custom_allocation(ptr, len, owner) }
}

/// [`into_buffer`] for floats.
pub(crate) fn floats_into_buffer(floats: Vec<f64>) -> Buffer {
    let mut floats = ManuallyDrop::new(floats);
    // SAFETY: `f64` and `u64` have the same size and alignment, and every bit pattern is a
    // valid `u64`; `floats` is not used or dropped after.
    let words = unsafe {
        Vec::from_raw_parts(
            floats.as_mut_ptr().cast::<u64>(),
            floats.len(),
            floats.capacity(),
        )
    };
    into_buffer(words)
}

/// Owner of a buffer's memory: on drop the vector goes to the shelf instead of the allocator.
struct Returned<T: Kept>(ManuallyDrop<Vec<T>>);

impl<T: Kept> Drop for Returned<T> {
    fn drop(&mut self) {
        // SAFETY: taken once, here, and `self.0` is not used after.
        let elements = unsafe { ManuallyDrop::take(&mut self.0) };
        shelf().give(elements, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn a_given_buffer_is_taken_again_empty() {
        let mut shelf = Shelf::new(16 * MIB);
        let now = Instant::now();
        let mut buffer = shelf.take::<u8>(MIB, now);
        buffer.extend_from_slice(&[7u8; 1000]);
        let pointer = buffer.as_ptr();
        shelf.give(buffer, now);
        assert!(shelf.held() >= MIB);
        let again = shelf.take::<u8>(MIB - 5000, now);
        assert_eq!(again.as_ptr(), pointer);
        assert!(again.is_empty());
        assert_eq!(shelf.held(), 0);
    }

    #[test]
    fn a_vector_that_grew_once_serves_its_first_size_again() {
        let mut shelf = Shelf::new(16 * MIB);
        let now = Instant::now();
        // 24 Ki words (192 KiB) first, grown to 48 Ki words (384 KiB) when full.
        let first = 24 * 1024;
        let mut words = shelf.take::<u64>(first, now);
        words.extend(std::iter::repeat_n(1u64, first + 1));
        let (pointer, grown) = (words.as_ptr(), words.capacity());
        assert!(grown * 8 >= MIN_KEPT && grown <= 2 * first);
        shelf.give(words, now);
        let again = shelf.take::<u64>(first, now);
        assert_eq!((again.as_ptr(), again.capacity()), (pointer, grown));
    }

    #[test]
    fn bytes_and_words_are_kept_apart() {
        let mut shelf = Shelf::new(16 * MIB);
        let now = Instant::now();
        shelf.give(Vec::<u8>::with_capacity(MIB), now);
        assert_eq!(shelf.held(), MIB);
        // A megabyte of bytes is no buffer for 128 Ki words: a new one is made.
        let words = shelf.take::<u64>(MIB / 8, now);
        assert!(words.capacity() >= MIB / 8);
        assert_eq!(shelf.held(), MIB);
        shelf.give(words, now);
        assert_eq!(shelf.held(), 2 * MIB);
        assert_eq!(shelf.take::<u64>(MIB / 8, now).capacity(), MIB / 8);
        assert_eq!(shelf.take::<u8>(MIB, now).capacity(), MIB);
        assert_eq!(shelf.held(), 0);
    }

    #[test]
    fn the_smallest_fitting_buffer_is_taken_and_large_ones_are_not_pinned() {
        let mut shelf = Shelf::new(64 * MIB);
        let now = Instant::now();
        for size in [8 * MIB, 2 * MIB, 3 * MIB] {
            shelf.give(Vec::<u8>::with_capacity(size), now);
        }
        assert_eq!(shelf.take::<u8>(2 * MIB + 1, now).capacity(), 3 * MIB);
        // 8 MiB is more than twice 1 MiB, 2 MiB is not.
        assert_eq!(shelf.take::<u8>(MIB, now).capacity(), 2 * MIB);
        let fresh = shelf.take::<u8>(MIB, now);
        assert!(fresh.capacity() >= MIB && fresh.capacity() <= MIB + MIB / 16);
        assert_eq!(shelf.held(), 8 * MIB);
    }

    #[test]
    fn small_buffers_and_buffers_over_the_limit_are_freed() {
        let mut shelf = Shelf::new(3 * MIB);
        let now = Instant::now();
        shelf.give(Vec::<u8>::with_capacity(MIN_KEPT - 1), now);
        shelf.give(Vec::<u64>::with_capacity(MIN_KEPT / 8 - 1), now);
        assert_eq!(shelf.held(), 0);
        shelf.give(Vec::<u8>::with_capacity(2 * MIB), now);
        shelf.give(Vec::<u64>::with_capacity(MIB / 4), now);
        assert_eq!(shelf.held(), 2 * MIB);
        shelf.give(Vec::<u64>::with_capacity(MIB / 8), now);
        assert_eq!(shelf.held(), 3 * MIB);
        let mut off = Shelf::new(0);
        off.give(Vec::<u8>::with_capacity(2 * MIB), now);
        assert_eq!(off.held(), 0);
    }

    #[test]
    fn unused_buffers_expire() {
        let mut shelf = Shelf::new(16 * MIB);
        let then = Instant::now();
        shelf.give(Vec::<u8>::with_capacity(MIB), then);
        shelf.give(Vec::<u64>::with_capacity(MIB / 8), then);
        shelf.give(Vec::<u8>::with_capacity(2 * MIB), then + KEEP_FOR / 2);
        shelf.expire(then + KEEP_FOR);
        assert_eq!(shelf.held(), 2 * MIB);
        // Expired on any visit, and never handed out.
        let taken = shelf.take::<u8>(2 * MIB, then + KEEP_FOR / 2 + KEEP_FOR);
        assert_eq!(shelf.held(), 0);
        assert!(taken.capacity() >= 2 * MIB);
    }

    #[test]
    fn capacities_round_up_by_less_than_a_sixteenth() {
        for min in [MIN_KEPT, MIN_KEPT + 1, 3 * MIB + 12345, 100 * MIB - 1] {
            let capacity = rounded_capacity(min);
            assert!(
                capacity >= min && capacity - min < min / 16,
                "{min} -> {capacity}"
            );
        }
        assert_eq!(rounded_capacity(3 * MIB + 1), 3 * MIB + 128 * 1024);
    }

    #[test]
    fn a_dropped_array_buffer_goes_back_to_the_shelf() {
        // A size no other test asks for, so the buffer stays on the global shelf.
        let size = 7 * MIB + 4321;
        let mut text = string_with_capacity(size);
        text.push_str(&"x".repeat(size));
        let buffer = into_buffer(text.into_bytes());
        assert_eq!(buffer.len(), size);
        assert!(buffer.as_slice().iter().all(|&b| b == b'x'));
        let pointer = buffer.as_ptr();
        let slice = buffer.slice(10);
        drop(buffer);
        // Still owned by the slice.
        assert_eq!(slice.as_slice()[0], b'x');
        drop(slice);
        let again = string_with_capacity(size);
        assert_eq!(again.as_ptr(), pointer);
        assert!(again.is_empty());
    }

    #[test]
    fn float_and_word_buffers_keep_their_values_and_come_back() {
        use arrow_array::{Float64Array, UInt64Array};
        use arrow_buffer::ScalarBuffer;
        let count = 1_000_003;
        let mut floats = floats_with_capacity(count);
        floats.extend((0..count).map(|i| i as f64 / 4.0));
        let pointer = floats.as_ptr().cast::<u8>();
        let column = Float64Array::new(
            ScalarBuffer::new(floats_into_buffer(floats), 0, count),
            None,
        );
        assert_eq!(column.value(count - 1), (count - 1) as f64 / 4.0);
        assert_eq!(column.len(), count);
        drop(column);
        // The floats' memory serves words next.
        let mut words = vec_with_capacity::<u64>(count);
        assert_eq!(words.as_ptr().cast::<u8>(), pointer);
        words.extend((0..count as u64).rev());
        let column = UInt64Array::new(ScalarBuffer::new(into_buffer(words), 0, count), None);
        assert_eq!(column.value(0), count as u64 - 1);
    }
}
