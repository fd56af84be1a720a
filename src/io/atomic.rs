//! Atomic file replacement: write to a temporary file beside the destination, then rename.
//!
//! Until [`AtomicFile::commit`] succeeds the destination is untouched; a failure, a panic or a
//! Ctrl-C drops the temporary file, so no partial output is ever visible under the final name.

use std::fs::File;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::{Error, Result};

/// A file that appears at its destination only when committed.
pub struct AtomicFile {
    temp: NamedTempFile,
    destination: PathBuf,
}

impl AtomicFile {
    /// Start writing `destination` (its directory must exist).
    pub fn create(destination: &Path) -> Result<Self> {
        let directory = match destination.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = destination
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(&directory)
            .map_err(|e| Error::io("creating a temporary file in", &directory, e))?;
        Ok(Self {
            temp,
            destination: destination.to_path_buf(),
        })
    }

    /// The file to write into.
    pub fn file_mut(&mut self) -> &mut File {
        self.temp.as_file_mut()
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> Result<u64> {
        self.temp
            .as_file()
            .metadata()
            .map(|m| m.len())
            .map_err(|e| Error::io("writing", &self.destination, e))
    }

    /// Flush to disk and move into place.
    pub fn commit(self) -> Result<u64> {
        let destination = self.destination;
        self.temp
            .as_file()
            .sync_all()
            .map_err(|e| Error::io("flushing", &destination, e))?;
        let bytes = self
            .temp
            .as_file()
            .metadata()
            .map(|m| m.len())
            .map_err(|e| Error::io("writing", &destination, e))?;
        self.temp
            .persist(&destination)
            .map_err(|e| Error::io("moving the finished file to", &destination, e.error))?;
        #[cfg(unix)]
        if let Some(parent) = destination.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Make the rename itself durable; failure here leaves a complete file, so ignore it.
            let _ = File::open(parent).and_then(|dir| dir.sync_all());
        }
        Ok(bytes)
    }
}

/// Refuse to overwrite the input with the output (which would destroy the input mid-read).
pub fn ensure_distinct(source: &Path, destination: &Path) -> Result<()> {
    let source_real = source
        .canonicalize()
        .map_err(|e| Error::io("opening", source, e))?;
    let destination_real = match destination.canonicalize() {
        Ok(path) => path,
        Err(_) => {
            let parent = match destination.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            parent
                .canonicalize()
                .map_err(|e| Error::io("opening the output directory", parent, e))?
                .join(destination.file_name().unwrap_or_default())
        }
    };
    if source_real == destination_real {
        return Err(Error::invalid_data(
            None,
            format!(
                "the output '{}' is the input itself; write to another path",
                destination.display()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn nothing_appears_until_commit() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        let mut file = AtomicFile::create(&target).unwrap();
        file.file_mut().write_all(b"partial").unwrap();
        assert!(!target.exists());
        drop(file);
        assert!(!target.exists());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "temp file removed"
        );
        let mut file = AtomicFile::create(&target).unwrap();
        file.file_mut().write_all(b"done").unwrap();
        assert_eq!(file.commit().unwrap(), 4);
        assert_eq!(std::fs::read(&target).unwrap(), b"done");
    }

    #[test]
    fn same_source_and_destination_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv");
        std::fs::write(&path, "x\n1\n").unwrap();
        assert!(ensure_distinct(&path, &path).is_err());
        assert!(ensure_distinct(&path, &dir.path().join("b.csv")).is_ok());
    }
}
