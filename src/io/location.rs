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
    DecryptOptions, DecryptingReader, EncryptOptions, EncryptingWriter, EncryptionContext,
    EnvelopeReport,
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

    /// The path whose extension names the format: the local path, or the blob's name.
    pub(crate) fn file_path(&self) -> PathBuf {
        match self {
            Location::Local(path) => path.clone(),
            Location::Blob(blob) => PathBuf::from(blob.file_name()),
        }
    }

    pub(crate) fn reader(&self) -> Result<(Box<dyn ReadSeek>, u64)> {
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
pub(crate) fn check_distinct(source: &Location, destination: &Location) -> Result<()> {
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
pub(crate) enum Output {
    Local(AtomicFile),
    Blob(super::blob::BlobWriter),
}

impl Output {
    pub(crate) fn create(location: &Location) -> Result<Self> {
        Ok(match location {
            Location::Local(path) => Output::Local(AtomicFile::create(path)?),
            Location::Blob(blob) => Output::Blob(blob.writer()?),
        })
    }

    pub(crate) fn commit(self) -> Result<u64> {
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
    #[cfg(unix)]
    if let (Location::Local(from), Location::Local(to)) = (source, destination) {
        if crate::envelope::is_regular_file(from) {
            return crate::envelope::encrypt_local_file(from, to, keks, context, options);
        }
    }
    let (mut input, input_len) = source.reader()?;
    let source_name = source.display_name();
    let destination_name = destination.display_name();
    let output = Output::create(destination)?;
    let mut writer =
        EncryptingWriter::with_expected_len(output, keks, context, options, Some(input_len))?;
    let info = writer.header_info().clone();
    crate::envelope::pump(&mut input, &mut writer, &source_name, &destination_name)?;
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
    #[cfg(unix)]
    if let (Location::Local(from), Location::Local(to)) = (source, destination) {
        if crate::envelope::is_regular_file(from) {
            return crate::envelope::decrypt_local_file(from, to, keks, expected_context, options);
        }
    }
    let mut reader = open_encrypted(source, keks, expected_context)?;
    let info = reader.header_info().clone();
    let container_bytes = info.header_len_bytes
        + info.plaintext_len_bytes.unwrap_or_default()
        + info.segments.unwrap_or_default() * crate::envelope::TAG_LEN as u64;
    let mut output = Output::create(destination)?;
    let progress = crate::envelope::decrypt_progress(options, reader.plaintext_len());
    let plaintext_bytes = reader.decrypt_all_to(&mut output, options.threads, progress)?;
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
/// Nothing is staged on local disk: a Parquet blob is read with ranged GETs (its footer, then
/// the column chunks of one row group at a time), a CSV blob as a stream, and each output is
/// uploaded in blocks while it is written and committed only when complete, so memory stays
/// bounded by the row groups in flight and a failed run leaves no output.
pub fn mask(
    source: &str,
    destination: &str,
    storage: &StorageOptions,
    policy: &crate::policy::Policy,
    keys: &dyn crate::keys::KeyProvider,
    options: &super::MaskOptions,
    control: &crate::parallel::RunControl,
) -> Result<super::MaskReport> {
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

    // (input, its file name) for every file of the dataset.
    let (inputs, source_is_directory): (Vec<(Location, String)>, bool) = if source_blob {
        if source.ends_with('/') {
            let blobs = BlobLocation::list_dataset(source, storage)?;
            let named = blobs
                .into_iter()
                .map(|blob| {
                    let name = blob.file_name().to_owned();
                    (Location::Blob(blob), name)
                })
                .collect();
            (named, true)
        } else {
            let blob = BlobLocation::parse(source, storage)?;
            let name = blob.file_name().to_owned();
            (vec![(Location::Blob(blob), name)], false)
        }
    } else {
        let path = PathBuf::from(source);
        if path.is_dir() {
            let named = super::dataset_files(&path)?
                .into_iter()
                .map(|file| {
                    let name = file
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    (Location::Local(file), name)
                })
                .collect();
            (named, true)
        } else {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (vec![(Location::Local(path), name)], false)
        }
    };

    let output_for = |name: &str| -> Result<Location> {
        if !source_is_directory {
            return Location::parse(destination, storage);
        }
        if destination_blob {
            let base = destination.trim_end_matches('/');
            Ok(Location::Blob(BlobLocation::parse(
                &format!("{base}/{name}"),
                storage,
            )?))
        } else {
            Ok(Location::Local(PathBuf::from(destination).join(name)))
        }
    };
    if source_is_directory && !destination_blob {
        std::fs::create_dir_all(destination)
            .map_err(|e| Error::io("creating directory", PathBuf::from(destination), e))?;
    }
    if !source_is_directory && destination_blob && destination.ends_with('/') {
        return Err(Error::InvalidArgument {
            name: "url",
            message: format!("'{destination}' names no blob for a single input file"),
        });
    }
    let pairs = inputs
        .into_iter()
        .map(|(input, name)| Ok((input, output_for(&name)?)))
        .collect::<Result<Vec<_>>>()?;
    super::mask_pairs(&pairs, policy, keys, options, control)
}
