//! Streaming encryption and random-access decryption over `std::io` types.
//!
//! [`EncryptingWriter`] writes the header at once, buffers plaintext until it has a batch of
//! whole segments plus at least one more byte (only then does it know those segments are not
//! the last), seals the batch (in parallel when there are several segments and threads) and
//! writes it out. [`EncryptingWriter::finish`] seals the final segment; a writer dropped without
//! `finish` leaves a container with no final segment, which never decrypts.
//!
//! [`DecryptingReader`] reads the header, recovers the DEK, then authenticates the final segment
//! before returning (so a truncated container fails at open, not after the caller has consumed
//! most of it). Reads and seeks then decrypt one segment at a time; no byte of a segment is
//! returned before its tag has verified.
//!
//! ```
//! use std::io::{Read, Seek, SeekFrom, Write};
//! use amlguard::envelope::{DecryptingReader, EncryptOptions, EncryptingWriter, EncryptionContext};
//! use amlguard::keys::{KeyEncryptionKey, LocalKeyring};
//! let dir = tempfile::tempdir().unwrap();
//! let keyring = LocalKeyring::open(dir.path()).unwrap();
//! keyring.ensure_key("k").unwrap();
//! let kek = keyring.kek("k").unwrap();
//! let keks: [&dyn KeyEncryptionKey; 1] = [&kek];
//! let context = EncryptionContext::from([("dataset".to_string(), "demo".to_string())]);
//!
//! let mut writer = EncryptingWriter::new(Vec::new(), &keks, &context, &EncryptOptions::default()).unwrap();
//! writer.write_all(&vec![42u8; 100_000]).unwrap();
//! let container = writer.finish().unwrap();
//!
//! let mut reader = DecryptingReader::open(std::io::Cursor::new(container), &keks, &context).unwrap();
//! reader.seek(SeekFrom::Start(99_990)).unwrap();
//! let mut tail = Vec::new();
//! reader.read_to_end(&mut tail).unwrap();
//! assert_eq!(tail, vec![42u8; 10]);
//! ```

use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use rayon::prelude::*;
use zeroize::Zeroizing;

use super::dek::{new_container, open_container};
use super::format::{EncryptionContext, HeaderReader, ParsedHeader};
use super::reuse::DekLease;
use super::segment::{index_u32, Layout, SegmentCipher, UsageMeter, TAG_LEN};
use super::{report_progress, EncryptOptions, HeaderInfo};
use crate::error::{Error, Result};
use crate::keys::KeyEncryptionKey;
use crate::parallel::RunControl;

/// Turn an amlguard error into an `io::Error` that carries it (for `Read`/`Write` impls).
pub(crate) fn to_io(error: Error) -> std::io::Error {
    let kind = match &error {
        Error::Io { source, .. } => source.kind(),
        _ => std::io::ErrorKind::InvalidData,
    };
    std::io::Error::new(kind, error)
}

/// Recover the amlguard error an `io::Error` carries, or wrap a plain one with `action`/`path`.
pub(crate) fn from_io(error: std::io::Error, action: &'static str, path: &str) -> Error {
    if error.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        if let Some(inner) = error.into_inner() {
            if let Ok(ours) = inner.downcast::<Error>() {
                return *ours;
            }
        }
        return Error::Decryption;
    }
    Error::io(action, path, error)
}

/// Encrypt all of `input` through `writer`, reading straight into the writer's batch buffer
/// (no intermediate copy), naming the side that failed in errors.
pub(crate) fn pump<W: Write + Send>(
    input: &mut dyn Read,
    writer: &mut EncryptingWriter<W>,
    source_name: &str,
    destination_name: &str,
) -> Result<()> {
    writer.fill_from(input, source_name, destination_name)
}

/// Worker threads for a batch, and the pool to run them on (none for one thread).
pub(crate) fn worker_pool(
    threads: Option<usize>,
) -> Result<(usize, Option<Arc<rayon::ThreadPool>>)> {
    let threads = threads
        .filter(|t| *t > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads == 1 {
        Ok((1, None))
    } else {
        Ok((threads, Some(crate::parallel::pool(Some(threads))?)))
    }
}

/// Encrypts everything written to it into an amlguard container written to `W`.
pub struct EncryptingWriter<W: Write> {
    inner: W,
    sealer: BatchSealer,
    info: HeaderInfo,
    /// Plaintext bytes sealed per batch: whole segments, one per worker thread.
    batch_bytes: usize,
    // Plain buffers for data (keys are zeroized, data is not): the plaintext came from the
    // caller and goes back to it, and volatile zeroing of every batch cost more than AES-GCM.
    /// A batch plus one byte: a batch is sealed as non-final only once a byte beyond it has
    /// arrived, so the final segment is always known to be final.
    plaintext: Vec<u8>,
    /// Bytes of `plaintext` in use.
    buffered: usize,
    sealed: Vec<u8>,
    control: Option<Arc<RunControl>>,
    expected_len: Option<u64>,
    failed: bool,
}

/// The sealing state of one container: its cipher, where the next segment index starts, and
/// the usage limits of its DEK.
struct BatchSealer {
    cipher: SegmentCipher,
    segment_size: usize,
    pool: Option<Arc<rayon::ThreadPool>>,
    usage: UsageMeter,
    /// The shared DEK's byte budget, when the DEK is reused across containers.
    lease: Option<DekLease>,
}

impl BatchSealer {
    /// Seal `plaintext` as the next segments (the last one final if `final_batch`) into
    /// `sealed`, grown as needed; returns the sealed length.
    fn seal(&mut self, plaintext: &[u8], final_batch: bool, sealed: &mut Vec<u8>) -> Result<usize> {
        let segment_size = self.segment_size;
        let len = plaintext.len();
        let chunk_count = len.div_ceil(segment_size).max(1);
        let first = self.usage.reserve(chunk_count as u64, len as u64)?;
        if let Some(lease) = &mut self.lease {
            lease.charge(len as u64)?;
        }
        // Every index is checked up front so that the parallel part cannot fail on it.
        index_u32(first + chunk_count as u64 - 1)?;

        let sealed_len = len + chunk_count * TAG_LEN;
        if sealed.len() < sealed_len {
            sealed.resize(sealed_len, 0);
        }
        let mut jobs: Vec<(u32, bool, &[u8], &mut [u8])> = Vec::with_capacity(chunk_count);
        let mut rest: &mut [u8] = &mut sealed[..sealed_len];
        for i in 0..chunk_count {
            let start = i * segment_size;
            let chunk = &plaintext[start..(start + segment_size).min(len)];
            let (out, tail) = std::mem::take(&mut rest).split_at_mut(chunk.len() + TAG_LEN);
            rest = tail;
            let index = index_u32(first + i as u64)?;
            jobs.push((index, final_batch && i + 1 == chunk_count, chunk, out));
        }
        let cipher = &self.cipher;
        let seal = |(index, last, chunk, out): (u32, bool, &[u8], &mut [u8])| {
            cipher.seal_into(index, last, chunk, out)
        };
        match &self.pool {
            Some(pool) if jobs.len() > 1 => {
                pool.install(|| jobs.into_par_iter().try_for_each(seal))?
            }
            _ => jobs.into_iter().try_for_each(seal)?,
        }
        Ok(sealed_len)
    }
}

impl<W: Write> EncryptingWriter<W> {
    /// Start a container: mint a DEK, wrap it under every KEK and write the header to `inner`.
    pub fn new(
        inner: W,
        keks: &[&dyn KeyEncryptionKey],
        context: &EncryptionContext,
        options: &EncryptOptions,
    ) -> Result<Self> {
        Self::with_expected_len(inner, keks, context, options, None)
    }

    /// [`EncryptingWriter::new`] for a plaintext of `expected_len` bytes, when known: lets a
    /// [`DekReuse`](super::DekReuse) share its DEK with this container and progress show a
    /// total. Writing more or fewer bytes is allowed.
    pub fn with_expected_len(
        mut inner: W,
        keks: &[&dyn KeyEncryptionKey],
        context: &EncryptionContext,
        options: &EncryptOptions,
        expected_len: Option<u64>,
    ) -> Result<Self> {
        let reuse = options.dek_reuse.as_ref().map(|r| (r, expected_len));
        let (header, cipher, lease) =
            new_container(keks, context, options.segment_size_bytes, reuse)?;
        inner
            .write_all(&header.to_bytes())
            .map_err(|e| from_io(e, "writing", "the output"))?;
        let (threads, pool) = worker_pool(options.threads)?;
        let segment_size = header.header.segment_size as usize;
        let batch_bytes = segment_size * threads;
        // A short input needs no batch-sized buffer.
        let plaintext_capacity = expected_len
            .and_then(|len| usize::try_from(len).ok())
            .map_or(batch_bytes, |len| len.min(batch_bytes))
            + 1;
        report_progress(options.control.as_deref(), 0, expected_len)?;
        Ok(Self {
            inner,
            sealer: BatchSealer {
                cipher,
                segment_size,
                pool,
                usage: UsageMeter::default(),
                lease,
            },
            info: HeaderInfo::from_parsed(&header, None),
            batch_bytes,
            plaintext: vec![0u8; plaintext_capacity],
            buffered: 0,
            sealed: Vec::new(),
            control: options.control.clone(),
            expected_len,
            failed: false,
        })
    }

    /// Facts about the header written (no secrets).
    pub fn header_info(&self) -> &HeaderInfo {
        &self.info
    }

    /// Plaintext bytes accepted so far.
    pub fn plaintext_bytes(&self) -> u64 {
        self.sealer.usage.plaintext_bytes + self.buffered as u64
    }

    /// Room for at least one more byte: grow the buffer to a batch plus one byte, or, when it
    /// is that full, seal the batch (more data follows it, so it is not final) and keep the
    /// byte beyond it.
    fn make_room(&mut self) -> Result<()> {
        if self.buffered < self.plaintext.len() {
            return Ok(());
        }
        if self.plaintext.len() <= self.batch_bytes {
            self.plaintext.resize(self.batch_bytes + 1, 0);
            return Ok(());
        }
        self.seal_prefix(self.batch_bytes, false)?;
        self.plaintext
            .copy_within(self.batch_bytes..self.buffered, 0);
        self.buffered -= self.batch_bytes;
        Ok(())
    }

    /// Seal the first `len` buffered bytes (all segments non-final, or the last one final)
    /// and write them out.
    fn seal_prefix(&mut self, len: usize, final_batch: bool) -> Result<()> {
        let sealed_len = self
            .sealer
            .seal(&self.plaintext[..len], final_batch, &mut self.sealed)?;
        self.inner
            .write_all(&self.sealed[..sealed_len])
            .map_err(|e| from_io(e, "writing", "the output"))?;
        report_progress(self.control.as_deref(), len as u64, self.expected_len)
    }

    /// Seal the final segment, flush, and return the inner writer.
    pub fn finish(mut self) -> Result<W> {
        if self.failed {
            return Err(Error::invalid_data(
                None,
                "an earlier write failed; the container is incomplete and must be discarded",
            ));
        }
        self.seal_prefix(self.buffered, true)?;
        self.buffered = 0;
        self.inner
            .flush()
            .map_err(|e| from_io(e, "writing", "the output"))?;
        Ok(self.inner)
    }

    fn write_inner(&mut self, mut data: &[u8]) -> Result<usize> {
        let written = data.len();
        while !data.is_empty() {
            self.make_room()?;
            let take = (self.plaintext.len() - self.buffered).min(data.len());
            self.plaintext[self.buffered..self.buffered + take].copy_from_slice(&data[..take]);
            self.buffered += take;
            data = &data[take..];
        }
        Ok(written)
    }

    /// Encrypt everything `input` yields, reading straight into the batch buffer. With
    /// several threads, each sealed batch is written by a thread of its own while the next one
    /// is read and sealed.
    pub(crate) fn fill_from(
        &mut self,
        input: &mut dyn Read,
        source_name: &str,
        destination_name: &str,
    ) -> Result<()>
    where
        W: Send,
    {
        if self.failed {
            return Err(Error::invalid_data(
                None,
                "an earlier write failed; the container is incomplete and must be discarded",
            ));
        }
        let result = if self.sealer.pool.is_some() {
            self.fill_overlapped(input, source_name)
        } else {
            (|| loop {
                self.make_room()?;
                match input.read(&mut self.plaintext[self.buffered..]) {
                    Ok(0) => return Ok(()),
                    Ok(n) => self.buffered += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(from_io(e, "reading", source_name)),
                }
            })()
        };
        if result.is_err() {
            self.failed = true;
        }
        result.map_err(|e| rename_output_error(e, destination_name))
    }

    fn fill_overlapped(&mut self, input: &mut dyn Read, source_name: &str) -> Result<()>
    where
        W: Send,
    {
        let Self {
            inner,
            sealer,
            batch_bytes,
            plaintext,
            buffered,
            sealed,
            control,
            expected_len,
            ..
        } = self;
        let batch_bytes = *batch_bytes;
        write_behind(inner, |pipe| loop {
            if *buffered == plaintext.len() {
                if plaintext.len() <= batch_bytes {
                    plaintext.resize(batch_bytes + 1, 0);
                } else {
                    let len = sealer.seal(&plaintext[..batch_bytes], false, sealed)?;
                    let full = std::mem::take(sealed);
                    *sealed = pipe.exchange(full, std::iter::once(0..len))?;
                    report_progress(control.as_deref(), batch_bytes as u64, *expected_len)?;
                    plaintext.copy_within(batch_bytes..*buffered, 0);
                    *buffered -= batch_bytes;
                }
            }
            match input.read(&mut plaintext[*buffered..]) {
                Ok(0) => return Ok(()),
                Ok(n) => *buffered += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(from_io(e, "reading", source_name)),
            }
        })
    }
}

/// The caller's end of [`write_behind`]: hands filled buffers to the writer thread and gets
/// free ones back. Two buffers circulate, so memory stays bounded.
pub(crate) struct Pipe {
    to_writer: std::sync::mpsc::SyncSender<(Vec<u8>, Vec<std::ops::Range<usize>>)>,
    free: std::sync::mpsc::Receiver<Vec<u8>>,
    spare: usize,
    broken: bool,
}

impl Pipe {
    /// Queue `ranges` of `filled` for writing (waiting while the previous buffer is still
    /// being written); returns a buffer to fill next.
    pub(crate) fn exchange(
        &mut self,
        filled: Vec<u8>,
        ranges: impl IntoIterator<Item = std::ops::Range<usize>>,
    ) -> Result<Vec<u8>> {
        let ranges = ranges.into_iter().collect();
        if self.to_writer.send((filled, ranges)).is_err() {
            self.broken = true;
            return Err(Error::invalid_data(
                None,
                "the output stopped accepting data",
            ));
        }
        if self.spare > 0 {
            self.spare -= 1;
            return Ok(Vec::new());
        }
        self.free.recv().map_err(|_| {
            self.broken = true;
            Error::invalid_data(None, "the output stopped accepting data")
        })
    }
}

/// Run `work` while a scoped thread writes the buffers it hands over to `out`, in order: a
/// batch's write overlaps the next batch's read and AES-GCM. The writer's error, if any, wins
/// over the caller's (which is then only a consequence of it).
pub(crate) fn write_behind<O: Write + Send + ?Sized, T>(
    out: &mut O,
    work: impl FnOnce(&mut Pipe) -> Result<T>,
) -> Result<T> {
    // A rendezvous channel: the caller waits for the writer rather than queueing buffers.
    let (to_writer, from_caller) =
        std::sync::mpsc::sync_channel::<(Vec<u8>, Vec<std::ops::Range<usize>>)>(0);
    let (to_caller, free) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> Result<()> {
            for (buffer, ranges) in from_caller {
                for range in ranges {
                    out.write_all(&buffer[range])
                        .map_err(|e| from_io(e, "writing", "the output"))?;
                }
                // The caller may have finished; then the buffer is simply dropped.
                let _ = to_caller.send(buffer);
            }
            Ok(())
        });
        let mut pipe = Pipe {
            to_writer,
            free,
            spare: 1,
            broken: false,
        };
        let result = work(&mut pipe);
        let broken = pipe.broken;
        drop(pipe);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(Error::invalid_data(None, "the writer thread panicked")));
        match (result, written) {
            (_, Err(error)) if broken => Err(error),
            (Err(error), _) => Err(error),
            (Ok(_), Err(error)) => Err(error),
            (Ok(value), Ok(())) => Ok(value),
        }
    })
}

/// Name the destination in a write error raised while sealing a batch.
fn rename_output_error(error: Error, destination_name: &str) -> Error {
    match error {
        Error::Io { source, .. } => {
            Error::io("writing", destination_name.trim_matches('\''), source)
        }
        other => other,
    }
}

impl<W: Write> Write for EncryptingWriter<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.failed {
            return Err(to_io(Error::invalid_data(
                None,
                "an earlier write failed; the container is incomplete and must be discarded",
            )));
        }
        self.write_inner(data).map_err(|e| {
            self.failed = true;
            to_io(e)
        })
    }

    /// Flushes the inner writer. Buffered plaintext stays buffered: segments are written whole.
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write> std::fmt::Debug for EncryptingWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptingWriter")
            .field("header", &self.info)
            .field("plaintext_bytes", &self.plaintext_bytes())
            .finish_non_exhaustive()
    }
}

/// Decrypts an amlguard container from `R` with random access by segment.
pub struct DecryptingReader<R: Read + Seek> {
    inner: R,
    source_name: String,
    payload_start: u64,
    layout: Layout,
    cipher: SegmentCipher,
    info: HeaderInfo,
    position: u64,
    /// The segment whose plaintext is in `buffer`, if any.
    current: Option<u64>,
    buffer: Zeroizing<Vec<u8>>,
    current_len: usize,
}

impl<R: Read + Seek> DecryptingReader<R> {
    /// Open a container that starts at the current position of `inner`.
    ///
    /// Checks the header, that `expected_context` is contained in the stored context, recovers
    /// the DEK with one of `keks`, checks its commitment and authenticates the final segment.
    pub fn open(
        inner: R,
        keks: &[&dyn KeyEncryptionKey],
        expected_context: &EncryptionContext,
    ) -> Result<Self> {
        Self::open_named(inner, keks, expected_context, "the input".into())
    }

    pub(crate) fn open_named(
        mut inner: R,
        keks: &[&dyn KeyEncryptionKey],
        expected_context: &EncryptionContext,
        source_name: String,
    ) -> Result<Self> {
        let start = inner
            .stream_position()
            .map_err(|e| from_io(e, "reading", &source_name))?;
        let header = HeaderReader {
            source_name: &source_name,
        }
        .read(&mut inner)?;
        let end = inner
            .seek(SeekFrom::End(0))
            .map_err(|e| from_io(e, "reading", &source_name))?;
        let payload_start = start + header.len;
        let layout = Layout::of_payload(
            header.header.segment_size,
            end.saturating_sub(payload_start),
        )?;
        let cipher = open_container(&header, keks, expected_context)?;
        let mut reader = Self {
            inner,
            info: HeaderInfo::from_parsed(&header, Some(layout)),
            source_name,
            payload_start,
            layout,
            cipher,
            position: 0,
            current: None,
            buffer: Zeroizing::new(Vec::new()),
            current_len: 0,
        };
        reader.load(layout.segments - 1)?;
        Ok(reader)
    }

    /// Facts about the header (no secrets).
    pub fn header_info(&self) -> &HeaderInfo {
        &self.info
    }

    /// Length of the plaintext, in bytes (authenticated: the final segment has verified).
    pub fn plaintext_len(&self) -> u64 {
        self.layout.plaintext_len()
    }

    /// Read, authenticate and decrypt segment `index` into the buffer.
    fn load(&mut self, index: u64) -> Result<()> {
        if self.current == Some(index) {
            return Ok(());
        }
        self.current = None;
        let len = self.layout.ciphertext_len(index) as usize;
        self.buffer.clear();
        self.buffer.resize(len, 0);
        self.inner
            .seek(SeekFrom::Start(
                self.payload_start + self.layout.offset(index),
            ))
            .map_err(|e| from_io(e, "reading", &self.source_name))?;
        match self.inner.read_exact(&mut self.buffer) {
            Ok(()) => {}
            // The input shrank after open: it is truncated.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(Error::Decryption)
            }
            Err(e) => return Err(from_io(e, "reading", &self.source_name)),
        }
        self.current_len = self.cipher.open(
            index_u32(index)?,
            self.layout.is_last(index),
            &mut self.buffer,
        )?;
        self.current = Some(index);
        Ok(())
    }

    /// Decrypt every segment in order into `out`, `threads` segments at a time in parallel;
    /// returns the plaintext bytes written. Each batch is verified before it is written.
    pub(crate) fn decrypt_all_to(
        &mut self,
        out: &mut (dyn Write + Send),
        threads: Option<usize>,
        mut progress: impl FnMut(u64) -> Result<()>,
    ) -> Result<u64> {
        let (threads, pool) = worker_pool(threads)?;
        let full = self.layout.segment_size as usize + TAG_LEN;
        // Not zeroized, like the writer's buffers: it holds data the caller receives anyway.
        let mut batch = Vec::with_capacity(full * threads);
        self.inner
            .seek(SeekFrom::Start(self.payload_start))
            .map_err(|e| from_io(e, "reading", &self.source_name))?;
        let segments = self.layout.segments;
        let mut written = 0u64;
        let mut index = 0u64;
        if pool.is_none() {
            while index < segments {
                let count = (segments - index).min(threads as u64);
                let ranges = self.open_batch(index, count, &mut batch, None)?;
                for range in ranges {
                    written += range.len() as u64;
                    out.write_all(&batch[range])
                        .map_err(|e| from_io(e, "writing", "the output"))?;
                }
                progress(written)?;
                index += count;
            }
            return Ok(written);
        }
        // Several threads: a verified batch is written by a thread of its own while the next
        // one is read and opened.
        write_behind(out, |pipe| {
            while index < segments {
                let count = (segments - index).min(threads as u64);
                let ranges = self.open_batch(index, count, &mut batch, pool.as_deref())?;
                written += ranges.iter().map(|r| r.len() as u64).sum::<u64>();
                let verified = std::mem::take(&mut batch);
                batch = pipe.exchange(verified, ranges)?;
                progress(written)?;
                index += count;
            }
            Ok(written)
        })
    }

    /// Read segments `index..index + count` into `batch` (grown as needed, never re-zeroed:
    /// refilling zeros every batch is a wasted memory pass), authenticate and decrypt them in
    /// place; returns where each segment's plaintext lies in `batch`.
    fn open_batch(
        &mut self,
        index: u64,
        count: u64,
        batch: &mut Vec<u8>,
        pool: Option<&rayon::ThreadPool>,
    ) -> Result<Vec<std::ops::Range<usize>>> {
        let layout = self.layout;
        let bytes: u64 = (index..index + count)
            .map(|i| layout.ciphertext_len(i))
            .sum();
        if batch.len() < bytes as usize {
            batch.resize(bytes as usize, 0);
        }
        let batch = &mut batch[..bytes as usize];
        match self.inner.read_exact(batch) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(Error::Decryption)
            }
            Err(e) => return Err(from_io(e, "reading", &self.source_name)),
        }
        let cipher = &self.cipher;
        let mut jobs = Vec::with_capacity(count as usize);
        let mut rest: &mut [u8] = &mut *batch;
        for i in index..index + count {
            let (segment, tail) =
                std::mem::take(&mut rest).split_at_mut(layout.ciphertext_len(i) as usize);
            rest = tail;
            jobs.push((index_u32(i)?, layout.is_last(i), segment));
        }
        let open = |(i, last, segment): (u32, bool, &mut [u8])| cipher.open(i, last, segment);
        let lengths: Vec<usize> = match pool {
            Some(pool) if jobs.len() > 1 => {
                pool.install(|| jobs.into_par_iter().map(open).collect::<Result<_>>())?
            }
            _ => jobs.into_iter().map(open).collect::<Result<_>>()?,
        };
        let mut offset = 0usize;
        Ok((index..)
            .zip(lengths)
            .map(|(i, plaintext_len)| {
                let range = offset..offset + plaintext_len;
                offset += layout.ciphertext_len(i) as usize;
                range
            })
            .collect())
    }

    /// What positional decryption needs: the input, where the payload starts, the segment
    /// layout and the cipher.
    #[cfg(unix)]
    pub(crate) fn segment_access(&self) -> (&R, u64, Layout, &SegmentCipher) {
        (&self.inner, self.payload_start, self.layout, &self.cipher)
    }

    /// The underlying reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read + Seek> Read for DecryptingReader<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if out.is_empty() || self.position >= self.plaintext_len() {
            return Ok(0);
        }
        let index = self.position / self.layout.segment_size;
        let offset = (self.position % self.layout.segment_size) as usize;
        self.load(index).map_err(to_io)?;
        let available = &self.buffer[offset..self.current_len];
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.position += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for DecryptingReader<R> {
    fn seek(&mut self, target: SeekFrom) -> std::io::Result<u64> {
        let (base, delta) = match target {
            SeekFrom::Start(position) => {
                self.position = position;
                return Ok(position);
            }
            SeekFrom::End(delta) => (self.plaintext_len(), delta),
            SeekFrom::Current(delta) => (self.position, delta),
        };
        match base.checked_add_signed(delta) {
            Some(position) => {
                self.position = position;
                Ok(position)
            }
            None => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing position",
            )),
        }
    }
}

impl<R: Read + Seek> std::fmt::Debug for DecryptingReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptingReader")
            .field("source", &self.source_name)
            .field("header", &self.info)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

/// Parse only the header of a container (no key needed).
pub(crate) fn read_header(reader: &mut impl Read, source_name: &str) -> Result<ParsedHeader> {
    HeaderReader { source_name }.read(reader)
}
