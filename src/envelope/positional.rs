//! Local files with positional I/O: every segment has a fixed place in both the plaintext and
//! the container, so each worker thread reads its segments at their offsets, seals or opens
//! them in one reusable buffer and writes them at their offsets (`pread`/`pwrite`).
//!
//! Worker `w` of `n` takes segments `w, w + n, w + 2n, ...`: no thread reads or writes on
//! another's behalf and no segment is copied between threads, so the work (system calls
//! included) scales with the threads, and memory is one segment buffer per thread whatever the
//! file size. The streaming types in `stream` serve everything else (blobs, pipes, `Write`).
//!
//! Output still goes to an [`AtomicFile`]. A decrypting worker writes a segment only after its
//! tag verified, into the temporary file; the destination appears only after all did.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::dek::new_container;
use super::file::EnvelopeReport;
use super::format::EncryptionContext;
use super::segment::{index_u32, Layout, UsageMeter, TAG_LEN};
use super::stream::DecryptingReader;
use super::{report_progress, DecryptOptions, EncryptOptions, HeaderInfo};
use crate::error::{Error, Result};
use crate::io::atomic::AtomicFile;
use crate::keys::KeyEncryptionKey;
use crate::parallel::RunControl;

/// Whether `path` is a regular file, whose length is known and which can be read at offsets
/// (not a pipe or a device).
pub(crate) fn is_regular_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

/// Threads to use for `segments` segments: as asked (`None`: one per CPU), at most one per
/// segment, so a small file costs one buffer and no thread.
fn thread_count(threads: Option<usize>, segments: u64) -> usize {
    let asked = threads
        .filter(|t| *t > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    usize::try_from(segments).map_or(asked, |segments| asked.min(segments).max(1))
}

/// Buffer placement for the kernel's copies between the page cache and user memory.
const COPY_ALIGN: usize = 64;

/// One thread's reusable segment buffer. Data read from file offset `o` is placed at an address
/// congruent to `o` modulo [`COPY_ALIGN`]. The kernel's copy (`rep movsb`) runs about three
/// times slower when its destination lies 1 to 31 bytes past its source modulo 4096 (2.1
/// against 6-7 GB/s from tmpfs on the reference machine), which an unaligned heap buffer read
/// at page-aligned file offsets hits every time; congruent addresses never do.
struct SegmentBuffer {
    bytes: Vec<u8>,
    aligned_start: usize,
}

impl SegmentBuffer {
    fn new(len: usize) -> Self {
        let bytes = vec![0u8; len + 2 * COPY_ALIGN];
        let misalignment = bytes.as_ptr() as usize % COPY_ALIGN;
        Self {
            aligned_start: (COPY_ALIGN - misalignment) % COPY_ALIGN,
            bytes,
        }
    }

    /// `len` bytes to read file offset `file_offset` into.
    fn for_offset(&mut self, file_offset: u64, len: usize) -> &mut [u8] {
        let start = self.aligned_start + (file_offset % COPY_ALIGN as u64) as usize;
        &mut self.bytes[start..start + len]
    }
}

/// Run `work(index, buffer)` for every segment index below `segments`, on `threads` threads
/// that each own one buffer for `buffer_len` bytes and take every `threads`-th index. `work`
/// returns the plaintext bytes it handled, reported to `control` (which can cancel). The first
/// failure stops every worker at its next segment and is returned.
fn for_each_segment(
    segments: u64,
    threads: usize,
    buffer_len: usize,
    control: Option<&RunControl>,
    total: u64,
    work: impl Fn(u64, &mut SegmentBuffer) -> Result<u64> + Sync,
) -> Result<()> {
    let stop = AtomicBool::new(false);
    let worker = |first: u64| -> Result<()> {
        let mut buffer = SegmentBuffer::new(buffer_len);
        let result = (first..segments)
            .step_by(threads)
            .take_while(|_| !stop.load(Ordering::Relaxed))
            .try_for_each(|index| {
                let done = work(index, &mut buffer)?;
                report_progress(control, done, Some(total))
            });
        if result.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        result
    };
    if threads == 1 {
        return worker(0);
    }
    std::thread::scope(|scope| {
        let others: Vec<_> = (1..threads as u64)
            .map(|first| scope.spawn(move || worker(first)))
            .collect();
        let mut result = worker(0);
        for handle in others {
            let joined = handle
                .join()
                .unwrap_or_else(|_| Err(Error::invalid_data(None, "a worker thread panicked")));
            if result.is_ok() {
                result = joined;
            }
        }
        result
    })
}

/// Fill `buffer` from `file` at `offset`; `Ok(false)` when the file ends first.
fn read_exact_at(file: &File, buffer: &mut [u8], offset: u64) -> std::io::Result<bool> {
    match file.read_exact_at(buffer, offset) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

fn changed_while_encrypting(source: &Path) -> Error {
    Error::invalid_data(
        None,
        format!(
            "'{}' changed size while it was being encrypted; nothing was written",
            source.display()
        ),
    )
}

/// Encrypt the regular file `source` into a container at `destination` (committed only when
/// complete). The plaintext length is the file's length when opened; a file that shrinks or
/// grows meanwhile is an error rather than a container of some other length.
pub(crate) fn encrypt_file(
    source: &Path,
    destination: &Path,
    keks: &[&dyn KeyEncryptionKey],
    context: &EncryptionContext,
    options: &EncryptOptions,
) -> Result<EnvelopeReport> {
    let started = Instant::now();
    let input = File::open(source).map_err(|e| Error::io("opening", source, e))?;
    let len = input
        .metadata()
        .map_err(|e| Error::io("reading", source, e))?
        .len();
    let reuse = options.dek_reuse.as_ref().map(|r| (r, Some(len)));
    let (header, cipher, mut lease) =
        new_container(keks, context, options.segment_size_bytes, reuse)?;
    let segment_size = u64::from(header.header.segment_size);
    let segments = len.div_ceil(segment_size).max(1);
    UsageMeter::default().reserve(segments, len)?;
    index_u32(segments - 1)?;
    if let Some(lease) = &mut lease {
        lease.charge(len)?;
    }
    let key_ids = HeaderInfo::from_parsed(&header, None).key_ids();
    let header_bytes = header.to_bytes();
    let header_len = header_bytes.len() as u64;

    let mut output = AtomicFile::create(destination)?;
    let out: &File = output.file_mut();
    let write_error = |e| Error::io("writing", destination, e);
    out.write_all_at(&header_bytes, 0).map_err(write_error)?;
    let control = options.control.as_deref();
    report_progress(control, 0, Some(len))?;
    let threads = thread_count(options.threads, segments);
    let buffer_len = len.min(segment_size) as usize + TAG_LEN;
    for_each_segment(
        segments,
        threads,
        buffer_len,
        control,
        len,
        |index, buffer| {
            let start = index * segment_size;
            let plaintext_len = (len - start).min(segment_size) as usize;
            let segment = buffer.for_offset(start, plaintext_len + TAG_LEN);
            let read = read_exact_at(&input, &mut segment[..plaintext_len], start)
                .map_err(|e| Error::io("reading", source, e))?;
            if !read {
                return Err(changed_while_encrypting(source));
            }
            cipher.seal(index_u32(index)?, index + 1 == segments, segment)?;
            out.write_all_at(
                segment,
                header_len + index * (segment_size + TAG_LEN as u64),
            )
            .map_err(write_error)?;
            Ok(plaintext_len as u64)
        },
    )?;
    // Bytes beyond the length we sealed mean the file grew: the container would miss them.
    let grew = input
        .read_at(&mut [0u8; 1], len)
        .map_err(|e| Error::io("reading", source, e))?;
    if grew != 0 {
        return Err(changed_while_encrypting(source));
    }
    let container_bytes = output.commit()?;
    Ok(EnvelopeReport {
        plaintext_bytes: len,
        container_bytes,
        segments,
        key_ids,
        elapsed_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Decrypt the container in the regular file `source` into `destination`, which appears only
/// after every segment verified.
pub(crate) fn decrypt_file(
    source: &Path,
    destination: &Path,
    keks: &[&dyn KeyEncryptionKey],
    expected_context: &EncryptionContext,
    options: &DecryptOptions,
) -> Result<EnvelopeReport> {
    let started = Instant::now();
    let input = File::open(source).map_err(|e| Error::io("opening", source, e))?;
    let name = format!("'{}'", source.display());
    // Checks the header, recovers the DEK and authenticates the final segment.
    let reader = DecryptingReader::open_named(input, keks, expected_context, name)?;
    let info = reader.header_info().clone();
    let (input, payload_start, layout, cipher) = reader.segment_access();
    let Layout {
        segment_size,
        segments,
        ..
    } = layout;
    let total = layout.plaintext_len();

    let mut output = AtomicFile::create(destination)?;
    let out: &File = output.file_mut();
    let control = options.control.as_deref();
    report_progress(control, 0, Some(total))?;
    let threads = thread_count(options.threads, segments);
    // The first segment is the longest (full, or the only one).
    let buffer_len = layout.ciphertext_len(0) as usize;
    for_each_segment(
        segments,
        threads,
        buffer_len,
        control,
        total,
        |index, buffer| {
            let offset = payload_start + layout.offset(index);
            let segment = buffer.for_offset(offset, layout.ciphertext_len(index) as usize);
            let read = read_exact_at(input, segment, offset)
                .map_err(|e| Error::io("reading", source, e))?;
            if !read {
                // The input shrank after it was opened: it is truncated.
                return Err(Error::Decryption);
            }
            let plaintext_len = cipher.open(index_u32(index)?, layout.is_last(index), segment)?;
            out.write_all_at(&segment[..plaintext_len], index * segment_size)
                .map_err(|e| Error::io("writing", destination, e))?;
            Ok(plaintext_len as u64)
        },
    )?;
    let container_bytes = payload_start + layout.offset(segments - 1) + layout.last_segment_bytes;
    output.commit()?;
    Ok(EnvelopeReport {
        plaintext_bytes: total,
        container_bytes,
        segments,
        key_ids: info.key_ids(),
        elapsed_seconds: started.elapsed().as_secs_f64(),
    })
}
