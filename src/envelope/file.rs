//! Files: encrypt, decrypt, rewrap (key rotation) and inspect containers on disk.
//!
//! Every function that writes goes through [`AtomicFile`]: the destination appears only when
//! the work is complete. Decryption in particular verifies every segment before the temporary
//! file is renamed, so unauthenticated plaintext never appears under the destination name.
//! [`rewrap`] replaces only the header's list of wrapped DEKs and copies the payload byte for
//! byte: the data is not re-encrypted.
//!
//! ```
//! use amlguard::envelope::{decrypt_file, encrypt_file, inspect, rewrap};
//! use amlguard::envelope::{DecryptOptions, EncryptOptions, EncryptionContext};
//! use amlguard::keys::LocalKeyring;
//! let dir = tempfile::tempdir().unwrap();
//! let keyring = LocalKeyring::open(dir.path().join("keys")).unwrap();
//! keyring.ensure_key("training-data").unwrap();
//! let kek = keyring.kek("training-data").unwrap();
//! let (plain, sealed, out) = (dir.path().join("a.csv"), dir.path().join("a.csv.amlg"), dir.path().join("b.csv"));
//! std::fs::write(&plain, "id,name\n1,Ada\n").unwrap();
//! let context = EncryptionContext::from([("dataset".to_string(), "people".to_string())]);
//! encrypt_file(&plain, &sealed, &[&kek], &context, &EncryptOptions::default()).unwrap();
//! keyring.rotate("training-data").unwrap();
//! let kek_v2 = keyring.kek("training-data").unwrap();
//! rewrap(&sealed, &[&kek], &[&kek_v2]).unwrap();
//! assert_eq!(inspect(&sealed).unwrap().key_ids(), vec!["local:training-data@2".to_string()]);
//! decrypt_file(&sealed, &out, &[&kek_v2], &context, &DecryptOptions::default()).unwrap();
//! assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&plain).unwrap());
//! ```

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use super::dek::{unwrap_data_key, wrap_under};
use super::format::EncryptionContext;
use super::segment::{header_tag, Layout};
use super::stream::{from_io, read_header};
use super::{DecryptOptions, EncryptOptions, HeaderInfo};
use crate::error::{Error, Result};
use crate::io::atomic::AtomicFile;
use crate::io::location::{self, Location};
use crate::keys::KeyEncryptionKey;

/// What an encrypt or decrypt call did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EnvelopeReport {
    /// Plaintext bytes read (encrypt) or written (decrypt).
    pub plaintext_bytes: u64,
    /// Container bytes written (encrypt) or read (decrypt).
    pub container_bytes: u64,
    /// Segments in the container.
    pub segments: u64,
    /// Key ids the DEK is wrapped under.
    pub key_ids: Vec<String>,
    /// Wall-clock time.
    pub elapsed_seconds: f64,
}

fn quoted(path: &Path) -> String {
    format!("'{}'", path.display())
}

fn file_len(file: &File, path: &Path) -> Result<u64> {
    file.metadata()
        .map(|m| m.len())
        .map_err(|e| Error::io("reading", path, e))
}

/// Encrypt the file `source` into the container `destination` (written atomically).
pub fn encrypt_file(
    source: &Path,
    destination: &Path,
    keks: &[&dyn KeyEncryptionKey],
    context: &EncryptionContext,
    options: &EncryptOptions,
) -> Result<EnvelopeReport> {
    // One implementation for files and blobs: a local path is one kind of location.
    location::encrypt(
        &Location::Local(source.to_path_buf()),
        &Location::Local(destination.to_path_buf()),
        keks,
        context,
        options,
    )
}

/// Decrypt the container `source` into `destination`. The destination appears only after every
/// segment has been authenticated; on any failure nothing is written there.
pub fn decrypt_file(
    source: &Path,
    destination: &Path,
    keks: &[&dyn KeyEncryptionKey],
    expected_context: &EncryptionContext,
    options: &DecryptOptions,
) -> Result<EnvelopeReport> {
    location::decrypt(
        &Location::Local(source.to_path_buf()),
        &Location::Local(destination.to_path_buf()),
        keks,
        expected_context,
        options,
    )
}

/// Re-wrap the container at `path` for key rotation: recover its DEK with one of `old_keks`,
/// wrap it under every KEK in `new_keks` (which replace the recorded ones) and rewrite the
/// header atomically. The payload is copied unchanged; no data is re-encrypted. Returns the
/// new header's facts.
pub fn rewrap(
    path: &Path,
    old_keks: &[&dyn KeyEncryptionKey],
    new_keks: &[&dyn KeyEncryptionKey],
) -> Result<HeaderInfo> {
    let name = quoted(path);
    let mut input = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let parsed = read_header(&mut input, &name)?;
    let dek = unwrap_data_key(&parsed, old_keks)?;
    let mut header = parsed.header.clone();
    header.wrapped_keys = wrap_under(dek.as_slice(), new_keks)?;
    // Keep the bound part byte for byte: it is what the segment key was derived from.
    let mut rewrapped = header.with_bound(parsed.bound.clone())?;
    rewrapped.tag = header_tag(&rewrapped, dek.as_slice());
    drop(dek);

    let permissions = input
        .metadata()
        .map_err(|e| Error::io("reading", path, e))?
        .permissions();
    let mut output = AtomicFile::create(path)?;
    let file = output.file_mut();
    file.write_all(&rewrapped.to_bytes())
        .map_err(|e| Error::io("writing", path, e))?;
    input
        .seek(SeekFrom::Start(parsed.len))
        .map_err(|e| Error::io("reading", path, e))?;
    let payload_bytes =
        std::io::copy(&mut input, file).map_err(|e| from_io(e, "copying the payload of", &name))?;
    file.set_permissions(permissions)
        .map_err(|e| Error::io("setting permissions on", path, e))?;
    output.commit()?;
    let layout = Layout::of_payload(header.segment_size, payload_bytes).ok();
    Ok(HeaderInfo::from_parsed(&rewrapped, layout))
}

/// Read the header of the container at `path`: format, suite, segment size, context and the
/// recorded key ids. Needs no key and shows no secret; the lengths are not authenticated.
pub fn inspect(path: &Path) -> Result<HeaderInfo> {
    let mut input = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let parsed = read_header(&mut input, &quoted(path))?;
    let len = file_len(&input, path)?;
    let layout =
        Layout::of_payload(parsed.header.segment_size, len.saturating_sub(parsed.len)).ok();
    Ok(HeaderInfo::from_parsed(&parsed, layout))
}
