//! Datasets hive-partitioned by the id column itself (`patient_id=subject-123/part-0.parquet`).
//!
//! The writers (pyarrow, polars, Spark) drop the partition column from the files and
//! percent-encode its value in the directory name, so the identifier is read from the path. A
//! subject's partition holds nothing but that subject's rows: its files are removed whole, and
//! then the directory, whose very name is the identifier.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use percent_encoding::percent_decode_str;

use super::matcher::Needles;
use crate::error::{Error, Result};

/// The value Spark and pyarrow write for a null partition value.
const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// The hive partition of the id column a file lies in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdPartition {
    /// The `id_column=value` directory.
    pub directory: PathBuf,
    /// The decoded value (`None` for a null partition).
    pub value: Option<String>,
}

impl IdPartition {
    /// Whether the partition value is one of the needles.
    pub fn matches(&self, needles: &Needles) -> bool {
        self.value.as_deref().is_some_and(|value| {
            needles.text.contains(value)
                || value
                    .parse::<i64>()
                    .is_ok_and(|n| needles.integers.contains(&n))
        })
    }
}

fn decode(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// The `key` and decoded value of a `key=value` path segment.
fn split_segment(segment: &str) -> Option<(String, String)> {
    let (key, value) = segment.split_once('=')?;
    Some((decode(key), decode(value)))
}

/// The id column's hive partition of `file`, a file of the dataset rooted at `root`.
pub fn id_partition(root: &Path, file: &Path, id_column: &str) -> Option<IdPartition> {
    let relative = file.strip_prefix(root).ok()?;
    let mut directory = root.to_path_buf();
    let mut components = relative.components().peekable();
    while let Some(component) = components.next() {
        if components.peek().is_none() {
            break; // the file name itself
        }
        let Component::Normal(segment) = component else {
            return None;
        };
        directory.push(segment);
        if let Some((key, value)) = split_segment(&segment.to_string_lossy()) {
            if key == id_column {
                return Some(IdPartition {
                    directory,
                    value: (value != NULL_PARTITION).then_some(value),
                });
            }
        }
    }
    None
}

/// Whether `directory` holds any file that is not hidden (`.x`, `_x`), at any depth, other
/// than those in `gone`.
fn holds_visible_files(directory: &Path, gone: &HashSet<&Path>) -> Result<bool> {
    let mut pending = vec![directory.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current).map_err(|e| Error::io("listing", &current, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("listing", &current, e))?;
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if !entry.file_name().to_string_lossy().starts_with(['.', '_'])
                && !gone.contains(path.as_path())
            {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Whether [`remove_partition_directory`] would remove `directory` once the files in `gone`
/// are removed: what a dry run reports, by the same rule as the real run.
pub fn would_remove_partition_directory(directory: &Path, gone: &HashSet<&Path>) -> Result<bool> {
    Ok(directory.is_dir() && !holds_visible_files(directory, gone)?)
}

/// Remove a subject's partition directory once its data files are gone. Hidden leftovers
/// (`_SUCCESS`, `.crc` checksums, temporary files of a killed run) go with it; a directory still
/// holding visible files is kept. Returns whether it was removed.
pub fn remove_partition_directory(directory: &Path) -> Result<bool> {
    if !would_remove_partition_directory(directory, &HashSet::new())? {
        return Ok(false);
    }
    std::fs::remove_dir_all(directory).map_err(|e| Error::io("removing", directory, e))?;
    if let Some(parent) = directory.parent() {
        let _ = std::fs::File::open(parent).and_then(|dir| dir.sync_all());
    }
    Ok(true)
}

/// `path` with the value of every `id_column=value` segment replaced by `pseudonym(value)`, so
/// that an audit record does not name a subject.
pub fn redact(path: &Path, id_columns: &[&str], pseudonym: &dyn Fn(&str) -> String) -> String {
    let redact_segment = |text: String| match split_segment(&text) {
        Some((key, value)) if id_columns.contains(&key.as_str()) => {
            let raw_key = text.split_once('=').map_or("", |(k, _)| k);
            format!("{raw_key}={}", pseudonym(&value))
        }
        _ => text,
    };
    let text = path.to_string_lossy();
    if crate::io::blob::is_blob_url(&text) {
        // A URL: split on '/' itself, so that `az://` keeps both slashes.
        return text
            .split('/')
            .map(|segment| redact_segment(segment.to_owned()))
            .collect::<Vec<_>>()
            .join("/");
    }
    path.components()
        .map(|component| redact_segment(component.as_os_str().to_string_lossy().into_owned()))
        .collect::<PathBuf>()
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_partition_is_found_and_decoded() {
        let root = Path::new("/data/patients");
        let file = Path::new("/data/patients/year=2024/patient_id=subject%20%2F1/part-0.parquet");
        let partition = id_partition(root, file, "patient_id").unwrap();
        assert_eq!(partition.value.as_deref(), Some("subject /1"));
        assert_eq!(
            partition.directory,
            Path::new("/data/patients/year=2024/patient_id=subject%20%2F1")
        );
        assert_eq!(
            id_partition(root, file, "year").unwrap().value.as_deref(),
            Some("2024")
        );
        assert!(id_partition(root, file, "other").is_none());
        // The file name is never a partition.
        assert!(
            id_partition(root, Path::new("/data/patients/patient_id=x"), "patient_id").is_none()
        );
        let null = Path::new("/data/patients/patient_id=__HIVE_DEFAULT_PARTITION__/p.parquet");
        assert_eq!(id_partition(root, null, "patient_id").unwrap().value, None);
    }

    #[test]
    fn partition_values_match_text_and_integer_needles() {
        let mut needles = Needles::default();
        needles.text.insert("a b".into());
        needles.integers.insert(42);
        let partition = |value: &str| IdPartition {
            directory: PathBuf::new(),
            value: Some(value.into()),
        };
        assert!(partition("a b").matches(&needles));
        assert!(partition("42").matches(&needles));
        assert!(!partition("43").matches(&needles));
        assert!(!IdPartition {
            directory: PathBuf::new(),
            value: None
        }
        .matches(&needles));
    }

    #[test]
    fn a_directory_is_removable_when_only_hidden_or_gone_files_remain() {
        let dir = tempfile::tempdir().unwrap();
        let partition = dir.path().join("patient_id=a");
        std::fs::create_dir_all(partition.join("day=1")).unwrap();
        let data = partition.join("day=1").join("part-0.parquet");
        std::fs::write(&data, b"x").unwrap();
        std::fs::write(partition.join("_SUCCESS"), b"").unwrap();
        let gone = HashSet::from([data.as_path()]);
        assert!(!would_remove_partition_directory(&partition, &HashSet::new()).unwrap());
        assert!(would_remove_partition_directory(&partition, &gone).unwrap());
        // A visible file the run does not remove keeps the directory.
        std::fs::write(partition.join("notes.txt"), b"kept").unwrap();
        assert!(!would_remove_partition_directory(&partition, &gone).unwrap());
        assert!(!remove_partition_directory(&partition).unwrap());
        assert!(partition.is_dir());
        std::fs::remove_file(partition.join("notes.txt")).unwrap();
        std::fs::remove_file(&data).unwrap();
        assert!(remove_partition_directory(&partition).unwrap());
        assert!(!partition.exists());
        assert!(!would_remove_partition_directory(&partition, &gone).unwrap());
    }

    #[test]
    fn redaction_replaces_only_id_partition_values() {
        let path = Path::new("/d/year=2024/patient_id=subject%2D1/part-0.parquet");
        let redacted = redact(path, &["patient_id"], &|v| format!("<{}>", v.len()));
        assert_eq!(redacted, "/d/year=2024/patient_id=<9>/part-0.parquet");
        assert!(!redacted.contains("subject"));
        let url = Path::new("az://lake/d/patient_id=subject-1/part-0.parquet");
        assert_eq!(
            redact(url, &["patient_id"], &|v| format!("<{}>", v.len())),
            "az://lake/d/patient_id=<9>/part-0.parquet"
        );
    }
}
