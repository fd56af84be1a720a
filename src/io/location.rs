//! Locations: a local path or an Azure Blob URL, and envelope encryption between any two.
//!
//! [`Location::parse`] reads `az://container/path` and
//! `abfss://container@account.dfs.core.windows.net/path` as blobs and anything else as a local
//! path. [`encrypt`] and [`decrypt`] stream from one location to another in bounded memory and
//! write atomically at either end (temp + rename locally, block-list commit on Blob Storage), so
//! a failure leaves no partial output. [`open_encrypted`] gives random access to a container:
//! on a blob it fetches only the ranges it needs.
//!
//! ```no_run
//! use amlguard::envelope::{DecryptOptions, EncryptOptions, EncryptionContext};
//! use amlguard::io::blob::StorageOptions;
//! use amlguard::io::location::{decrypt, encrypt, Location};
//! use amlguard::keys::{AzureKeyVault, AzureKeyVaultOptions, KeyEncryptionKey};
//! let vault = AzureKeyVault::new("https://contoso-ml.vault.azure.net", None,
//!                                AzureKeyVaultOptions::default()).unwrap();
//! let kek = vault.kek("training-kek", None, None).unwrap();
//! let options = StorageOptions::from_pairs([("account_name", "contosoml")]);
//! let context = EncryptionContext::from([("dataset".to_string(), "patients".to_string())]);
//! let sealed = Location::parse("az://raw/patients/part-0.parquet.amlg", &options).unwrap();
//! encrypt(&Location::parse("part-0.parquet", &options).unwrap(), &sealed, &[&kek], &context,
//!         &EncryptOptions::default()).unwrap();
//! decrypt(&sealed, &Location::parse("copy.parquet", &options).unwrap(), &[&kek], &context,
//!         &DecryptOptions::default()).unwrap();
//! ```

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::time::Instant;

use super::atomic::{ensure_distinct, AtomicFile};
use super::blob::{is_blob_url, BlobLocation, StorageOptions};
use crate::envelope::{
    from_io_error, DecryptOptions, DecryptingReader, EncryptOptions, EncryptingWriter,
    EncryptionContext, EnvelopeReport,
};
use crate::error::{Error, Result};
use crate::keys::KeyEncryptionKey;

/// Where a file lives.
#[derive(Clone, Debug)]
pub enum Location {
    /// A local path.
    Local(PathBuf),
    /// An Azure blob.
    Blob(BlobLocation),
}

/// `Read + Seek + Send`, for readers of either kind of location.
pub trait ReadSeek: Read + Seek + Send {}
impl<T: Read + Seek + Send> ReadSeek for T {}

impl Location {
    /// A blob for `az://` / `abfs[s]://` URLs, otherwise a local path. Other URL schemes are
    /// refused rather than taken for odd file names.
    pub fn parse(text: &str, options: &StorageOptions) -> Result<Self> {
        if is_blob_url(text) {
            return Ok(Location::Blob(BlobLocation::parse(text, options)?));
        }
        if let Some((scheme, _)) = text.split_once("://") {
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+')
            {
                return Err(Error::InvalidArgument {
                    name: "url",
                    message: format!(
                        "'{text}': the '{scheme}://' scheme is not supported; use a local path, az:// or abfss://"
                    ),
                });
            }
        }
        Ok(Location::Local(PathBuf::from(text)))
    }

    /// The location as text (a path or the URL).
    pub fn display_name(&self) -> String {
        match self {
            Location::Local(path) => format!("'{}'", path.display()),
            Location::Blob(blob) => format!("'{}'", blob.url()),
        }
    }

    fn reader(&self) -> Result<(Box<dyn ReadSeek>, u64)> {
        match self {
            Location::Local(path) => {
                let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
                let len = file
                    .metadata()
                    .map_err(|e| Error::io("reading", path, e))?
                    .len();
                Ok((Box::new(file), len))
            }
            Location::Blob(blob) => {
                let reader = blob.reader()?;
                let len = reader.len();
                Ok((Box::new(reader), len))
            }
        }
    }
}

/// Refuse reading and writing the same place.
fn check_distinct(source: &Location, destination: &Location) -> Result<()> {
    match (source, destination) {
        (Location::Local(a), Location::Local(b)) => ensure_distinct(a, b),
        (Location::Blob(a), Location::Blob(b)) if a.url() == b.url() => Err(Error::invalid_data(
            None,
            format!(
                "the output '{}' is the input itself; write to another blob",
                b.url()
            ),
        )),
        _ => Ok(()),
    }
}

/// An output that appears only when committed.
enum Output {
    Local(AtomicFile),
    Blob(super::blob::BlobWriter),
}

impl Output {
    fn create(location: &Location) -> Result<Self> {
        Ok(match location {
            Location::Local(path) => Output::Local(AtomicFile::create(path)?),
            Location::Blob(blob) => Output::Blob(blob.writer()?),
        })
    }

    fn commit(self) -> Result<u64> {
        match self {
            Output::Local(file) => file.commit(),
            Output::Blob(writer) => writer.finish(),
        }
    }
}

impl Write for Output {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::Local(file) => file.file_mut().write(data),
            Output::Blob(writer) => writer.write(data),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Local(file) => file.file_mut().flush(),
            Output::Blob(writer) => writer.flush(),
        }
    }
}

/// Encrypt `source` into a container at `destination` (committed only when complete).
pub fn encrypt(
    source: &Location,
    destination: &Location,
    keks: &[&dyn KeyEncryptionKey],
    context: &EncryptionContext,
    options: &EncryptOptions,
) -> Result<EnvelopeReport> {
    let started = Instant::now();
    check_distinct(source, destination)?;
    let (mut input, _) = source.reader()?;
    let source_name = source.display_name();
    let destination_name = destination.display_name();
    let output = Output::create(destination)?;
    let mut writer = EncryptingWriter::new(output, keks, context, options)?;
    let info = writer.header_info().clone();
    crate::envelope::pump(
        &mut input,
        &mut writer,
        options.segment_size_bytes,
        &source_name,
        &destination_name,
    )?;
    let plaintext_bytes = writer.plaintext_bytes();
    let output = writer.finish()?;
    let container_bytes = output.commit()?;
    let segments = plaintext_bytes
        .div_ceil(u64::from(info.segment_size_bytes))
        .max(1);
    Ok(EnvelopeReport {
        plaintext_bytes,
        container_bytes,
        segments,
        key_ids: info.key_ids(),
        elapsed_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Decrypt the container at `source` into `destination`, which appears only after every
/// segment has been authenticated.
pub fn decrypt(
    source: &Location,
    destination: &Location,
    keks: &[&dyn KeyEncryptionKey],
    expected_context: &EncryptionContext,
    options: &DecryptOptions,
) -> Result<EnvelopeReport> {
    let started = Instant::now();
    check_distinct(source, destination)?;
    let mut reader = open_encrypted(source, keks, expected_context)?;
    let info = reader.header_info().clone();
    let container_bytes = info.header_len_bytes
        + info.plaintext_len_bytes.unwrap_or_default()
        + info.segments.unwrap_or_default() * crate::envelope::TAG_LEN as u64;
    let mut output = Output::create(destination)?;
    let plaintext_bytes = reader.decrypt_all_to(&mut output, options.threads, |_| Ok(()))?;
    output.commit()?;
    Ok(EnvelopeReport {
        plaintext_bytes,
        container_bytes,
        segments: info.segments.unwrap_or_default(),
        key_ids: info.key_ids(),
        elapsed_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Open the container at `source` for random-access reading (header checked, DEK unwrapped,
/// final segment authenticated).
pub fn open_encrypted(
    source: &Location,
    keks: &[&dyn KeyEncryptionKey],
    expected_context: &EncryptionContext,
) -> Result<DecryptingReader<Box<dyn ReadSeek>>> {
    let (input, _) = source.reader()?;
    DecryptingReader::open_named(input, keks, expected_context, source.display_name())
}

/// Mask a file or dataset where either end may be Azure Blob Storage: `az://container/file`
/// or a "directory" `az://container/prefix/` of Parquet/CSV blobs, or local paths.
///
/// Blob inputs are streamed (ranged reads) into a private temporary directory, masked there by
/// [`super::mask_file`] exactly as local files are, and the outputs streamed up as block blobs
/// that each commit only when complete. Memory stays bounded; the temporary directory needs
/// room for the input and the output and is removed afterwards.
pub fn mask(
    source: &str,
    destination: &str,
    storage: &StorageOptions,
    policy: &crate::policy::Policy,
    keys: &dyn crate::keys::KeyProvider,
    options: &super::MaskOptions,
    control: &crate::parallel::RunControl,
) -> Result<super::MaskReport> {
    let started = Instant::now();
    let (source_blob, destination_blob) = (is_blob_url(source), is_blob_url(destination));
    for text in [source, destination] {
        // Refuse unsupported schemes up front; blob URLs are checked when they are used.
        if !is_blob_url(text) {
            Location::parse(text, storage)?;
        }
    }
    if !source_blob && !destination_blob {
        return super::mask_file(
            std::path::Path::new(source),
            std::path::Path::new(destination),
            policy,
            keys,
            options,
            control,
        );
    }
    if source_blob
        && destination_blob
        && source.trim_end_matches('/') == destination.trim_end_matches('/')
    {
        return Err(Error::invalid_data(
            None,
            format!("the output '{destination}' is the input itself; write to another place"),
        ));
    }
    let staging = tempfile::Builder::new()
        .prefix("amlguard-mask-")
        .tempdir()
        .map_err(|e| Error::io("creating a temporary directory in", std::env::temp_dir(), e))?;
    let staged_in = staging.path().join("in");
    let staged_out = staging.path().join("out");
    for directory in [&staged_in, &staged_out] {
        std::fs::create_dir(directory).map_err(|e| Error::io("creating", directory, e))?;
    }

    let source_is_directory;
    let local_source = if source_blob {
        source_is_directory = source.ends_with('/');
        if source_is_directory {
            for blob in BlobLocation::list_dataset(source, storage)? {
                control.check()?;
                download(&blob, &staged_in.join(blob.file_name()))?;
            }
            staged_in.clone()
        } else {
            let blob = BlobLocation::parse(source, storage)?;
            let local = staged_in.join(blob.file_name());
            download(&blob, &local)?;
            local
        }
    } else {
        let path = PathBuf::from(source);
        source_is_directory = path.is_dir();
        path
    };

    let local_destination = if destination_blob {
        if source_is_directory {
            staged_out.clone()
        } else {
            let name = destination.rsplit('/').next().unwrap_or_default();
            if name.is_empty() {
                return Err(Error::InvalidArgument {
                    name: "url",
                    message: format!("'{destination}' names no blob for a single input file"),
                });
            }
            staged_out.join(name)
        }
    } else {
        PathBuf::from(destination)
    };

    let mut report = super::mask_file(
        &local_source,
        &local_destination,
        policy,
        keys,
        options,
        control,
    )?;

    if destination_blob {
        if source_is_directory {
            let base = destination.trim_end_matches('/');
            let mut outputs: Vec<PathBuf> = std::fs::read_dir(&staged_out)
                .map_err(|e| Error::io("listing", &staged_out, e))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| path.is_file())
                .collect();
            outputs.sort();
            for output in outputs {
                control.check()?;
                let name = output.file_name().unwrap_or_default().to_string_lossy();
                let blob = BlobLocation::parse(&format!("{base}/{name}"), storage)?;
                upload(&output, &blob)?;
            }
        } else {
            upload(
                &local_destination,
                &BlobLocation::parse(destination, storage)?,
            )?;
        }
    }
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn download(blob: &BlobLocation, local: &std::path::Path) -> Result<()> {
    let mut reader = blob.reader()?;
    let mut file = File::create(local).map_err(|e| Error::io("creating", local, e))?;
    std::io::copy(&mut reader, &mut file)
        .map_err(|e| from_io_error(e, "downloading", &format!("'{}'", blob.url())))?;
    Ok(())
}

fn upload(local: &std::path::Path, blob: &BlobLocation) -> Result<()> {
    let mut file = File::open(local).map_err(|e| Error::io("opening", local, e))?;
    let mut writer = blob.writer()?;
    std::io::copy(&mut file, &mut writer)
        .map_err(|e| from_io_error(e, "uploading", &format!("'{}'", blob.url())))?;
    writer.finish()?;
    Ok(())
}
