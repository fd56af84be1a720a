//! Output buffers of string operators, kept for the next call once their arrays are dropped.
//!
//! A masked column is new memory on every call. Returned to the system allocator, a freed
//! column of hundreds of megabytes goes back to the kernel, and the next call's output is
//! faulted in and zeroed again page by page (about a tenth of a redaction pass from Python).
//! Buffers of at least [`MIN_KEPT`] bytes are instead put on a shelf when their last array is
//! dropped, up to a limit (`AMLGUARD_BUFFER_CACHE_MIB`, default [`DEFAULT_LIMIT_MIB`]; 0 turns
//! it off), and freed once unused for [`KEEP_FOR`]. The shelf holds no values: a buffer is
//! cleared before it is handed out again, and every byte an array exposes was written by its
//! operator.

use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arrow_buffer::Buffer;

/// Smaller buffers come from the allocator's heap, where freed memory stays mapped.
pub(crate) const MIN_KEPT: usize = 256 * 1024;
/// What the shelf may hold when `AMLGUARD_BUFFER_CACHE_MIB` is unset.
pub(crate) const DEFAULT_LIMIT_MIB: usize = 256;
/// How long a buffer may sit unused on the shelf before it is freed.
pub(crate) const KEEP_FOR: Duration = Duration::from_secs(10);
const LIMIT_ENV: &str = "AMLGUARD_BUFFER_CACHE_MIB";

/// Buffers kept for reuse, with when each was put back.
pub(crate) struct Shelf {
    limit: usize,
    kept: Vec<(Vec<u8>, Instant)>,
    bytes: usize,
}

impl Shelf {
    pub(crate) fn new(limit: usize) -> Self {
        Shelf {
            limit,
            kept: Vec::new(),
            bytes: 0,
        }
    }

    /// An empty buffer with room for at least `min` bytes: the smallest kept one that fits
    /// and is at most twice `min` (a small request does not pin a large buffer), else a new
    /// one with its capacity rounded up so that requests of nearly the same size share it.
    pub(crate) fn take(&mut self, min: usize, now: Instant) -> Vec<u8> {
        self.expire(now);
        if min < MIN_KEPT || self.limit == 0 {
            return Vec::with_capacity(min);
        }
        let best = self
            .kept
            .iter()
            .enumerate()
            .filter(|(_, (buffer, _))| (min..=min.saturating_mul(2)).contains(&buffer.capacity()))
            .min_by_key(|(_, (buffer, _))| buffer.capacity())
            .map(|(index, _)| index);
        match best {
            Some(index) => {
                let (mut buffer, _) = self.kept.swap_remove(index);
                self.bytes -= buffer.capacity();
                buffer.clear();
                buffer
            }
            None => Vec::with_capacity(rounded_capacity(min)),
        }
    }

    /// Keep `buffer` if it is large enough and fits under the limit; else it is freed.
    pub(crate) fn give(&mut self, buffer: Vec<u8>, now: Instant) {
        self.expire(now);
        let capacity = buffer.capacity();
        if capacity >= MIN_KEPT && self.bytes + capacity <= self.limit {
            self.bytes += capacity;
            self.kept.push((buffer, now));
        }
    }

    /// Bytes held on the shelf.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    fn expire(&mut self, now: Instant) {
        let bytes = &mut self.bytes;
        self.kept.retain(|(buffer, since)| {
            let keep = now.saturating_duration_since(*since) < KEEP_FOR;
            if !keep {
                *bytes -= buffer.capacity();
            }
            keep
        });
    }
}

/// `min` rounded up to a multiple of 1/32 of its next power of two (less than 1/16 more).
fn rounded_capacity(min: usize) -> usize {
    let step = (min.next_power_of_two() / 32).max(1);
    min.div_ceil(step).saturating_mul(step)
}

fn shelf() -> &'static Mutex<Shelf> {
    static SHELF: OnceLock<Mutex<Shelf>> = OnceLock::new();
    SHELF.get_or_init(|| {
        let mib = std::env::var(LIMIT_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(DEFAULT_LIMIT_MIB);
        Mutex::new(Shelf::new(mib.saturating_mul(1024 * 1024)))
    })
}

/// An empty string with room for at least `min` bytes, reusing a kept buffer when one fits.
pub(crate) fn string_with_capacity(min: usize) -> String {
    if min < MIN_KEPT {
        return String::with_capacity(min);
    }
    // A poisoned lock only means a panic elsewhere while it was held; the shelf stays valid.
    let buffer = shelf()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take(min, Instant::now());
    // An empty buffer is valid UTF-8.
    String::from_utf8(buffer).expect("an empty buffer is valid UTF-8")
}

/// An Arrow buffer over `bytes` that returns them to the shelf when its last user drops it.
pub(crate) fn into_buffer(bytes: Vec<u8>) -> Buffer {
    if bytes.capacity() < MIN_KEPT {
        return Buffer::from_vec(bytes);
    }
    let len = bytes.len();
    let ptr = NonNull::new(bytes.as_ptr().cast_mut()).expect("a vector's pointer is not null");
    let owner = Arc::new(Returned(ManuallyDrop::new(bytes)));
    // SAFETY: `ptr` points at `len` initialised bytes of the vector `owner` holds; moving the
    // vector into `owner` does not move its heap memory, and `owner` lives as long as the
    // buffer and every slice of it.
    unsafe { Buffer::from_custom_allocation(ptr, len, owner) }
}

/// Owner of a buffer's memory: on drop the vector goes to the shelf instead of the allocator.
struct Returned(ManuallyDrop<Vec<u8>>);

impl Drop for Returned {
    fn drop(&mut self) {
        // SAFETY: taken once, here, and `self.0` is not used after.
        let bytes = unsafe { ManuallyDrop::take(&mut self.0) };
        shelf()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .give(bytes, Instant::now());
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
        let mut buffer = shelf.take(MIB, now);
        buffer.extend_from_slice(&[7u8; 1000]);
        let pointer = buffer.as_ptr();
        shelf.give(buffer, now);
        assert!(shelf.bytes() >= MIB);
        let again = shelf.take(MIB - 5000, now);
        assert_eq!(again.as_ptr(), pointer);
        assert!(again.is_empty());
        assert_eq!(shelf.bytes(), 0);
    }

    #[test]
    fn the_smallest_fitting_buffer_is_taken_and_large_ones_are_not_pinned() {
        let mut shelf = Shelf::new(64 * MIB);
        let now = Instant::now();
        for size in [8 * MIB, 2 * MIB, 3 * MIB] {
            shelf.give(Vec::with_capacity(size), now);
        }
        assert_eq!(shelf.take(2 * MIB + 1, now).capacity(), 3 * MIB);
        // 8 MiB is more than twice 1 MiB, 2 MiB is not.
        assert_eq!(shelf.take(MIB, now).capacity(), 2 * MIB);
        let fresh = shelf.take(MIB, now);
        assert!(fresh.capacity() >= MIB && fresh.capacity() <= MIB + MIB / 16);
        assert_eq!(shelf.bytes(), 8 * MIB);
    }

    #[test]
    fn small_buffers_and_buffers_over_the_limit_are_freed() {
        let mut shelf = Shelf::new(3 * MIB);
        let now = Instant::now();
        shelf.give(Vec::with_capacity(MIN_KEPT - 1), now);
        assert_eq!(shelf.bytes(), 0);
        shelf.give(Vec::with_capacity(2 * MIB), now);
        shelf.give(Vec::with_capacity(2 * MIB), now);
        assert_eq!(shelf.bytes(), 2 * MIB);
        let mut off = Shelf::new(0);
        off.give(Vec::with_capacity(2 * MIB), now);
        assert_eq!(off.bytes(), 0);
    }

    #[test]
    fn unused_buffers_expire() {
        let mut shelf = Shelf::new(16 * MIB);
        let then = Instant::now();
        shelf.give(Vec::with_capacity(MIB), then);
        shelf.give(Vec::with_capacity(2 * MIB), then + KEEP_FOR / 2);
        shelf.expire(then + KEEP_FOR);
        assert_eq!(shelf.bytes(), 2 * MIB);
        // Expired on any visit, and never handed out.
        let taken = shelf.take(2 * MIB, then + KEEP_FOR / 2 + KEEP_FOR);
        assert_eq!(shelf.bytes(), 0);
        assert!(taken.capacity() >= 2 * MIB);
    }

    #[test]
    fn capacities_round_up_by_at_most_a_sixteenth() {
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
}
