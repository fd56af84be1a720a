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
use super::segment::{index_u32, Layout, SegmentCipher, UsageMeter, TAG_LEN};
use super::{EncryptOptions, HeaderInfo};
use crate::error::{Error, Result};
use crate::keys::KeyEncryptionKey;

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

/// Copy all of `input` into `writer` (an [`EncryptingWriter`]) through a buffer of one segment
/// (clamped to 64 KiB..8 MiB), naming the side that failed in errors.
pub(crate) fn pump(
    input: &mut dyn Read,
    writer: &mut dyn Write,
    segment_size_bytes: usize,
    source_name: &str,
    destination_name: &str,
) -> Result<()> {
    let mut buffer = vec![0u8; segment_size_bytes.clamp(64 * 1024, 8 * 1024 * 1024)];
    loop {
        let n = match input.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(from_io(e, "reading", source_name)),
        };
        writer
            .write_all(&buffer[..n])
            .map_err(|e| from_io(e, "writing", destination_name))?;
    }
}

/// Worker threads for a batch, and the pool to run them on (none for one thread).
fn worker_pool(threads: Option<usize>) -> Result<(usize, Option<Arc<rayon::ThreadPool>>)> {
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
    cipher: SegmentCipher,
    info: HeaderInfo,
    segment_size: usize,
    batch_segments: usize,
    pool: Option<Arc<rayon::ThreadPool>>,
    // Plain buffers for data (keys are zeroized, data is not): the plaintext came from the
    // caller and goes back to it, and volatile zeroing of every batch cost more than AES-GCM.
    plaintext: Vec<u8>,
    sealed: Vec<u8>,
    usage: UsageMeter,
    failed: bool,
}

impl<W: Write> EncryptingWriter<W> {
    /// Start a container: mint a DEK, wrap it under every KEK and write the header to `inner`.
    pub fn new(
        mut inner: W,
        keks: &[&dyn KeyEncryptionKey],
        context: &EncryptionContext,
        options: &EncryptOptions,
    ) -> Result<Self> {
        let (header, cipher) = new_container(keks, context, options.segment_size_bytes)?;
        inner
            .write_all(&header.to_bytes())
            .map_err(|e| from_io(e, "writing", "the output"))?;
        let (threads, pool) = worker_pool(options.threads)?;
        let segment_size = header.header.segment_size as usize;
        Ok(Self {
            inner,
            cipher,
            info: HeaderInfo::from_parsed(&header, None),
            segment_size,
            batch_segments: threads,
            pool,
            plaintext: Vec::with_capacity(segment_size * threads),
            sealed: Vec::new(),
            usage: UsageMeter::default(),
            failed: false,
        })
    }

    /// Facts about the header written (no secrets).
    pub fn header_info(&self) -> &HeaderInfo {
        &self.info
    }

    /// Plaintext bytes accepted so far.
    pub fn plaintext_bytes(&self) -> u64 {
        self.usage.plaintext_bytes + self.plaintext.len() as u64
    }

    fn batch_capacity(&self) -> usize {
        self.segment_size * self.batch_segments
    }

    /// Seal the buffered plaintext: all segments as non-final, or with the last one final.
    fn seal_buffered(&mut self, final_batch: bool) -> Result<()> {
        let segment_size = self.segment_size;
        let chunk_count = self.plaintext.len().div_ceil(segment_size).max(1);
        let first = self
            .usage
            .reserve(chunk_count as u64, self.plaintext.len() as u64)?;
        // Every index is checked up front so that the parallel part cannot fail on it.
        index_u32(first + chunk_count as u64 - 1)?;

        self.sealed.clear();
        self.sealed
            .resize(self.plaintext.len() + chunk_count * TAG_LEN, 0);
        let mut jobs: Vec<(u32, bool, &[u8], &mut [u8])> = Vec::with_capacity(chunk_count);
        let mut rest: &mut [u8] = &mut self.sealed;
        for i in 0..chunk_count {
            let start = i * segment_size;
            let end = (start + segment_size).min(self.plaintext.len());
            let chunk = &self.plaintext[start..end];
            let (out, tail) = std::mem::take(&mut rest).split_at_mut(chunk.len() + TAG_LEN);
            rest = tail;
            let index = index_u32(first + i as u64)?;
            jobs.push((index, final_batch && i + 1 == chunk_count, chunk, out));
        }
        let cipher = &self.cipher;
        let seal = |(index, last, chunk, out): (u32, bool, &[u8], &mut [u8])| {
            out[..chunk.len()].copy_from_slice(chunk);
            cipher.seal(index, last, out)
        };
        match &self.pool {
            Some(pool) if jobs.len() > 1 => {
                pool.install(|| jobs.into_par_iter().try_for_each(seal))?
            }
            _ => jobs.into_iter().try_for_each(seal)?,
        }
        self.plaintext.clear();
        self.inner
            .write_all(&self.sealed)
            .map_err(|e| from_io(e, "writing", "the output"))
    }

    /// Seal the final segment, flush, and return the inner writer.
    pub fn finish(mut self) -> Result<W> {
        if self.failed {
            return Err(Error::invalid_data(
                None,
                "an earlier write failed; the container is incomplete and must be discarded",
            ));
        }
        self.seal_buffered(true)?;
        self.inner
            .flush()
            .map_err(|e| from_io(e, "writing", "the output"))?;
        Ok(self.inner)
    }

    fn write_inner(&mut self, mut data: &[u8]) -> Result<usize> {
        let written = data.len();
        while !data.is_empty() {
            // Seal only when more data is waiting: a full buffer may still hold the final segment.
            if self.plaintext.len() == self.batch_capacity() {
                self.seal_buffered(false)?;
            }
            let take = (self.batch_capacity() - self.plaintext.len()).min(data.len());
            self.plaintext.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(written)
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
        out: &mut dyn Write,
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
        let mut written = 0u64;
        let mut index = 0u64;
        while index < self.layout.segments {
            let count = (self.layout.segments - index).min(threads as u64);
            let bytes: u64 = (index..index + count)
                .map(|i| self.layout.ciphertext_len(i))
                .sum();
            batch.clear();
            batch.resize(bytes as usize, 0);
            match self.inner.read_exact(&mut batch) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err(Error::Decryption)
                }
                Err(e) => return Err(from_io(e, "reading", &self.source_name)),
            }
            let layout = self.layout;
            let cipher = &self.cipher;
            let mut jobs = Vec::with_capacity(count as usize);
            let mut rest: &mut [u8] = &mut batch;
            for i in index..index + count {
                let (segment, tail) =
                    std::mem::take(&mut rest).split_at_mut(layout.ciphertext_len(i) as usize);
                rest = tail;
                jobs.push((index_u32(i)?, layout.is_last(i), segment));
            }
            let open = |(i, last, segment): (u32, bool, &mut [u8])| cipher.open(i, last, segment);
            let lengths: Vec<usize> = match &pool {
                Some(pool) if jobs.len() > 1 => {
                    pool.install(|| jobs.into_par_iter().map(open).collect::<Result<_>>())?
                }
                _ => jobs.into_iter().map(open).collect::<Result<_>>()?,
            };
            let mut offset = 0usize;
            for (i, plaintext_len) in (index..).zip(lengths) {
                out.write_all(&batch[offset..offset + plaintext_len])
                    .map_err(|e| from_io(e, "writing", "the output"))?;
                offset += layout.ciphertext_len(i) as usize;
                written += plaintext_len as u64;
            }
            progress(written)?;
            index += count;
        }
        Ok(written)
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
