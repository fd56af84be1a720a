//! The local keyring: the embedded default key provider.
//!
//! A directory holding one sub-directory per key name and one file per key version
//! (`<root>/<name>/v<version>.key`, 32 random bytes). Directories are created with mode 0700 and
//! files with 0600; a key file readable by group or others is refused. New versions are written
//! to a temporary file and linked into place without overwriting, so concurrent creators cannot
//! clobber each other and a crash never leaves a half-written key.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::{SecretKey, KEY_LEN_BYTES};
use crate::error::{Error, Result};

/// A key name plus version, written `name@version`. Never secret.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyId {
    /// Key name.
    pub name: String,
    /// Key version, starting at 1.
    pub version: u32,
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

/// A reference to a key as a policy writes it: `name` (latest version) or `name@version`.
pub(crate) fn parse_key_reference(reference: &str) -> Result<(String, Option<u32>)> {
    match reference.split_once('@') {
        None => {
            validate_key_name(reference)?;
            Ok((reference.to_owned(), None))
        }
        Some((name, version)) => {
            validate_key_name(name)?;
            let version = version
                .parse::<u32>()
                .ok()
                .filter(|v| *v >= 1)
                .ok_or_else(|| Error::Keyring {
                    message: format!(
                        "key reference '{reference}' has an invalid version; use 'name' or 'name@N' with N >= 1"
                    ),
                })?;
            Ok((name.to_owned(), Some(version)))
        }
    }
}

fn validate_key_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(Error::Keyring {
            message: format!(
                "invalid key name '{name}': use 1-128 characters from A-Z a-z 0-9 _ - . starting with a letter or digit"
            ),
        })
    }
}

/// A directory of named, versioned 256-bit keys.
#[derive(Clone, Debug)]
pub struct LocalKeyring {
    root: PathBuf,
}

impl LocalKeyring {
    /// The keyring path used when none is given: `$AMLGUARD_KEYRING`, else `~/.amlguard/keyring`.
    pub fn default_path() -> Result<PathBuf> {
        if let Some(path) = std::env::var_os("AMLGUARD_KEYRING").filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(path));
        }
        let home = std::env::var_os("HOME")
            .or_else(|| std::env::var_os("USERPROFILE"))
            .ok_or_else(|| Error::Keyring {
                message: "no keyring path given and neither AMLGUARD_KEYRING nor HOME is set"
                    .into(),
            })?;
        Ok(PathBuf::from(home).join(".amlguard").join("keyring"))
    }

    /// Open (creating on first use) the keyring at `root`.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        create_private_dir(&root)?;
        Ok(Self { root })
    }

    /// A handle to `root` that does not create anything; reading a key from it fails with
    /// `KeyNotFound` unless the keyring exists. Used where no rule needs a key.
    pub fn unopened(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Open the keyring at [`LocalKeyring::default_path`].
    pub fn open_default() -> Result<Self> {
        Self::open(Self::default_path()?)
    }

    /// Where the keyring lives.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Human-readable description for errors; never secret.
    pub fn describe(&self) -> String {
        format!("the local keyring at '{}'", self.root.display())
    }

    /// Create version 1 of `name` unless the key exists; returns the latest version's id.
    pub fn ensure_key(&self, name: &str) -> Result<KeyId> {
        validate_key_name(name)?;
        match self.latest_version(name)? {
            Some(version) => Ok(KeyId {
                name: name.to_owned(),
                version,
            }),
            None => self.create_version(name, 1),
        }
    }

    /// Add a new version of `name` (creating the key if needed); older versions stay readable.
    pub fn rotate(&self, name: &str) -> Result<KeyId> {
        validate_key_name(name)?;
        let next = self.latest_version(name)?.map_or(1, |v| v + 1);
        self.create_version(name, next)
    }

    /// Names of all keys, sorted.
    pub fn list_keys(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let entries = fs::read_dir(&self.root).map_err(|e| Error::io("listing", &self.root, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("listing", &self.root, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if validate_key_name(&name).is_ok()
                && entry.path().is_dir()
                && self.latest_version(&name)?.is_some()
            {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Versions of `name`, ascending (empty when the key does not exist).
    pub fn versions(&self, name: &str) -> Result<Vec<u32>> {
        validate_key_name(name)?;
        let dir = self.root.join(name);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("listing", &dir, e)),
        };
        let mut versions = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("listing", &dir, e))?;
            let file_name = entry.file_name();
            let file_name = file_name.to_string_lossy();
            if let Some(version) = file_name
                .strip_prefix('v')
                .and_then(|rest| rest.strip_suffix(".key"))
                .and_then(|digits| digits.parse::<u32>().ok())
            {
                versions.push(version);
            }
        }
        versions.sort_unstable();
        Ok(versions)
    }

    fn latest_version(&self, name: &str) -> Result<Option<u32>> {
        Ok(self.versions(name)?.last().copied())
    }

    /// The latest version of `name`.
    pub fn key(&self, name: &str) -> Result<SecretKey> {
        let version = self
            .latest_version(name)?
            .ok_or_else(|| Error::KeyNotFound {
                name: name.to_owned(),
                provider: self.describe(),
            })?;
        self.key_version(name, version)
    }

    /// A key by reference: `name` (latest version) or `name@version`.
    pub fn key_by_reference(&self, reference: &str) -> Result<SecretKey> {
        match parse_key_reference(reference)? {
            (name, None) => self.key(&name),
            (name, Some(version)) => self.key_version(&name, version),
        }
    }

    /// One exact version of `name`.
    pub fn key_version(&self, name: &str, version: u32) -> Result<SecretKey> {
        validate_key_name(name)?;
        let path = self.version_path(name, version);
        let mut file = match fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::KeyNotFound {
                    name: format!("{name}@{version}"),
                    provider: self.describe(),
                })
            }
            Err(e) => return Err(Error::io("reading key file", &path, e)),
        };
        check_private_file(&file, &path)?;
        let mut material = Zeroizing::new([0u8; KEY_LEN_BYTES]);
        let mut extra = [0u8; 1];
        file.read_exact(material.as_mut_slice())
            .map_err(|_| self.corrupt(&path))?;
        if file.read(&mut extra).map_err(|_| self.corrupt(&path))? != 0 {
            return Err(self.corrupt(&path));
        }
        Ok(SecretKey::new(
            KeyId {
                name: name.to_owned(),
                version,
            },
            material,
        ))
    }

    fn corrupt(&self, path: &Path) -> Error {
        Error::Keyring {
            message: format!(
                "key file '{}' is not {KEY_LEN_BYTES} bytes long; it is damaged",
                path.display()
            ),
        }
    }

    fn version_path(&self, name: &str, version: u32) -> PathBuf {
        self.root.join(name).join(format!("v{version:06}.key"))
    }

    fn create_version(&self, name: &str, version: u32) -> Result<KeyId> {
        let dir = self.root.join(name);
        create_private_dir(&dir)?;
        let mut material = Zeroizing::new([0u8; KEY_LEN_BYTES]);
        getrandom::getrandom(material.as_mut_slice()).map_err(|e| Error::Keyring {
            message: format!("the operating system's random generator failed: {e}"),
        })?;
        let mut builder = tempfile::Builder::new();
        builder.prefix(".tmp-key-");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(fs::Permissions::from_mode(0o600));
        }
        let mut temp = builder
            .tempfile_in(&dir)
            .map_err(|e| Error::io("creating key file in", &dir, e))?;
        temp.write_all(material.as_slice())
            .and_then(|_| temp.as_file().sync_all())
            .map_err(|e| Error::io("writing key file in", &dir, e))?;
        let path = self.version_path(name, version);
        match temp.persist_noclobber(&path) {
            Ok(_) => {}
            // Another process created this version first: theirs stands, and is as good as ours.
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("creating key file", &path, e.error)),
        }
        Ok(KeyId {
            name: name.to_owned(),
            version,
        })
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        match fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
        {
            Ok(()) => Ok(()),
            Err(e) => Err(Error::io("creating keyring directory", dir, e)),
        }
    }
    #[cfg(not(unix))]
    {
        fs::create_dir_all(dir).map_err(|e| Error::io("creating keyring directory", dir, e))
    }
}

fn check_private_file(file: &fs::File, path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file
            .metadata()
            .map_err(|e| Error::io("reading key file", path, e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(Error::Keyring {
                message: format!(
                    "key file '{}' is readable by other users (mode {:o}); run chmod 600 on it",
                    path.display(),
                    mode & 0o777
                ),
            });
        }
    }
    #[cfg(not(unix))]
    let _ = (file, path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_versions_and_reads_them_back() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = LocalKeyring::open(dir.path().join("ring")).unwrap();
        assert_eq!(keyring.ensure_key("a").unwrap().to_string(), "a@1");
        assert_eq!(keyring.ensure_key("a").unwrap().to_string(), "a@1");
        assert_eq!(keyring.rotate("a").unwrap().to_string(), "a@2");
        assert_eq!(keyring.key("a").unwrap().id().version, 2);
        let v1 = keyring.key_by_reference("a@1").unwrap();
        let v2 = keyring.key_by_reference("a").unwrap();
        assert_ne!(v1.material.as_slice(), v2.material.as_slice());
        assert_eq!(keyring.list_keys().unwrap(), vec!["a".to_string()]);
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private_and_loose_permissions_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let keyring = LocalKeyring::open(dir.path()).unwrap();
        keyring.ensure_key("k").unwrap();
        let path = keyring.version_path("k", 1);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(keyring.key("k"), Err(Error::Keyring { .. })));
    }

    #[test]
    fn bad_names_missing_keys_and_damaged_files_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = LocalKeyring::open(dir.path()).unwrap();
        assert!(matches!(
            keyring.ensure_key("../x"),
            Err(Error::Keyring { .. })
        ));
        assert!(matches!(
            keyring.key("nope"),
            Err(Error::KeyNotFound { .. })
        ));
        assert!(matches!(
            keyring.key_by_reference("a@0"),
            Err(Error::Keyring { .. })
        ));
        keyring.ensure_key("short").unwrap();
        fs::write(keyring.version_path("short", 1), b"abc").unwrap();
        assert!(matches!(keyring.key("short"), Err(Error::Keyring { .. })));
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = LocalKeyring::open(dir.path()).unwrap();
        keyring.ensure_key("k").unwrap();
        let key = keyring.key("k").unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains("k"));
        assert!(!shown.contains(&hex::encode(key.material.as_slice())));
        assert!(!shown.contains(&format!("{:?}", key.material.as_slice())));
    }
}
