//! Azure Blob Storage (and Azurite) as a place to read and write files.
//!
//! Built on `object_store`'s Azure backend (the Arrow ecosystem's object-store layer): it parses
//! `az://` and `abfss://` URLs, signs with account keys, SAS, bearer tokens or its own
//! managed-identity / workload-identity / CLI credentials, retries transient faults, speaks to
//! Azurite in emulator mode, and uploads block blobs with Put Block + Put Block List.
//!
//! - [`BlobWriter`] is a `std::io::Write` that uploads in parts of `part_size_bytes`, at most
//!   `max_parts_in_flight` at a time, so memory stays bounded whatever the file size. Nothing is
//!   visible under the blob's name until [`BlobWriter::finish`] commits the block list (or, for
//!   a blob smaller than one part, puts it in one request); a writer dropped or failed before
//!   that leaves no blob behind, and an existing blob keeps its old content.
//! - [`BlobReader`] is a `Read + Seek` over ranged GETs with a read-ahead window, so
//!   `DecryptingReader` on a blob is random access: reading the end of a large container fetches
//!   only the header, the last segment and the segments asked for.
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use amlguard::io::blob::{BlobLocation, StorageOptions};
//! let options = StorageOptions::from_pairs([("use_emulator", "true")]);
//! let location = BlobLocation::parse("az://raw/patients/part-0.bin", &options).unwrap();
//! let mut writer = location.writer().unwrap();
//! writer.write_all(b"bytes").unwrap();
//! writer.finish().unwrap();
//! let mut text = Vec::new();
//! location.reader().unwrap().read_to_end(&mut text).unwrap();
//! ```

use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use azure_core::credentials::{AccessToken, TokenCredential};
use bytes::Bytes;
use object_store::azure::{AzureConfigKey, AzureCredential, MicrosoftAzureBuilder};
use object_store::path::Path as ObjectPath;
use object_store::{CredentialProvider, MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::{Error, Result};
use crate::parallel::{block_on, runtime};

/// Scope of Azure Storage bearer tokens.
const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

/// How to reach a storage account.
#[derive(Clone, Default)]
pub struct StorageOptions {
    /// `object_store` Azure options, e.g. `account_name`, `account_key`, `sas_token`,
    /// `use_emulator`, `endpoint`, `client_id`/`client_secret`/`tenant_id`. Values from
    /// `AZURE_*` environment variables apply first; these override them.
    pub options: Vec<(String, String)>,
    /// A token credential (e.g. a Python `azure-identity` credential) used for bearer tokens,
    /// instead of the credentials the options or environment name.
    pub credential: Option<Arc<dyn TokenCredential>>,
    /// Bytes per uploaded block (default 8 MiB).
    pub part_size_bytes: usize,
    /// Blocks uploading concurrently (default 4); memory is about
    /// `part_size_bytes x (max_parts_in_flight + 1)`.
    pub max_parts_in_flight: usize,
    /// Largest ranged read (default 16 MiB). Reads start at 1 MiB and double while the
    /// caller reads sequentially, so random access fetches little and streaming fetches a lot.
    pub read_ahead_bytes: usize,
}

impl std::fmt::Debug for StorageOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Option values can be account keys or SAS tokens: show only the names.
        let names: Vec<&str> = self.options.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("StorageOptions")
            .field("options", &names)
            .field("credential", &self.credential.is_some())
            .field("part_size_bytes", &self.part_size_bytes())
            .finish_non_exhaustive()
    }
}

impl StorageOptions {
    /// Options from `(key, value)` pairs.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            options: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            ..Self::default()
        }
    }

    fn part_size_bytes(&self) -> usize {
        if self.part_size_bytes == 0 {
            8 * 1024 * 1024
        } else {
            self.part_size_bytes
        }
    }

    fn max_parts_in_flight(&self) -> usize {
        if self.max_parts_in_flight == 0 {
            4
        } else {
            self.max_parts_in_flight
        }
    }

    fn read_ahead_bytes(&self) -> usize {
        if self.read_ahead_bytes == 0 {
            16 * 1024 * 1024
        } else {
            self.read_ahead_bytes
        }
    }
}

/// Whether `text` names a blob (`az://`, `abfs://`, `abfss://`) rather than a local path.
pub fn is_blob_url(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.starts_with("az://") || lower.starts_with("abfs://") || lower.starts_with("abfss://")
}

/// Bridges an azure_core token credential to object_store, caching the token until five
/// minutes before it expires (object_store asks for a credential on every request).
#[derive(Debug)]
struct TokenCredentialProvider {
    credential: Arc<dyn TokenCredential>,
    cached: tokio::sync::Mutex<Option<(AccessToken, Arc<AzureCredential>)>>,
}

#[async_trait::async_trait]
impl CredentialProvider for TokenCredentialProvider {
    type Credential = AzureCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AzureCredential>> {
        let mut cached = self.cached.lock().await;
        if let Some((token, credential)) = cached.as_ref() {
            let refresh_at = token.expires_on - crate::keys::azure::TOKEN_REFRESH_MARGIN;
            if azure_core::time::OffsetDateTime::now_utc() < refresh_at {
                return Ok(credential.clone());
            }
        }
        let token = self
            .credential
            .get_token(&[STORAGE_SCOPE], None)
            .await
            .map_err(|e| object_store::Error::Unauthenticated {
                path: String::new(),
                source: Box::new(e),
            })?;
        let credential = Arc::new(AzureCredential::BearerToken(
            token.token.secret().to_owned(),
        ));
        *cached = Some((token, credential.clone()));
        Ok(credential)
    }
}

fn invalid_url(url: &str, why: &str) -> Error {
    Error::InvalidArgument {
        name: "url",
        message: format!(
            "'{url}' {why}; expected az://<container>/<path> or abfss://<container>@<account>.dfs.core.windows.net/<path>"
        ),
    }
}

fn check_container(url: &str, container: &str) -> Result<()> {
    // Azure container names: 3-63 characters, lowercase letters, digits and single dashes.
    let valid = (3..=63).contains(&container.len())
        && container
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !container.starts_with('-')
        && !container.ends_with('-')
        && !container.contains("--");
    if valid {
        Ok(())
    } else {
        Err(invalid_url(
            url,
            &format!("names container '{container}', which is not a valid container name (3-63 lowercase letters, digits and dashes)"),
        ))
    }
}

/// Map an object_store error to a typed amlguard error about `url`.
pub(crate) fn storage_error(action: &'static str, url: &str, error: object_store::Error) -> Error {
    use std::io::ErrorKind;
    let kind = match &error {
        object_store::Error::NotFound { .. } => ErrorKind::NotFound,
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => ErrorKind::PermissionDenied,
        object_store::Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
        _ => ErrorKind::Other,
    };
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(inner) = source {
        let shown = inner.to_string();
        if !message.contains(&shown) {
            message.push_str(": ");
            message.push_str(&shown);
        }
        source = inner.source();
    }
    Error::io(
        action,
        PathBuf::from(url),
        std::io::Error::new(kind, message),
    )
}

/// One blob: its store, path and the URL it was named by.
#[derive(Clone)]
pub struct BlobLocation {
    url: String,
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    options: StorageOptions,
    endpoint: Arc<Endpoint>,
}

/// Where a location's blob service is and how to sign for it, for requests `object_store`
/// does not make itself (append blobs).
struct Endpoint {
    /// `https://<account>.blob.core.windows.net/<container>` (or the emulator's / endpoint's).
    container_url: url::Url,
    account: String,
    credentials: crate::io::blob_rest::AzureCredentials,
}

/// The REST address of one blob, its account and its credentials.
pub(crate) struct BlobEndpoint {
    pub(crate) blob_url: url::Url,
    pub(crate) account: String,
    pub(crate) credentials: crate::io::blob_rest::AzureCredentials,
}

/// The REST address and credentials of the blob `url` names (see [`BlobLocation::parse`]).
pub(crate) fn blob_endpoint(url: &str, options: &StorageOptions) -> Result<BlobEndpoint> {
    let location = BlobLocation::parse(url, options)?;
    let mut blob_url = location.endpoint.container_url.clone();
    {
        let mut segments = blob_url
            .path_segments_mut()
            .map_err(|_| invalid_url(url, "has an endpoint that cannot hold a path"))?;
        segments.pop_if_empty();
        for part in location.path.parts() {
            segments.push(part.as_ref());
        }
    }
    Ok(BlobEndpoint {
        blob_url,
        account: location.endpoint.account.clone(),
        credentials: location.endpoint.credentials.clone(),
    })
}

impl std::fmt::Debug for BlobLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobLocation")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl BlobLocation {
    /// Parse `az://container/path` or `abfss://container@account.dfs.core.windows.net/path`
    /// and build a client for it. Makes no request.
    pub fn parse(url: &str, options: &StorageOptions) -> Result<Self> {
        Self::parse_with(url, options, false)
    }

    /// The blobs directly under the "directory" `url` (`az://container/prefix/`) whose names
    /// end in `.parquet`, `.pq`, `.parq` or `.csv` and do not start with `.` or `_`, sorted.
    pub fn list_dataset(url: &str, options: &StorageOptions) -> Result<Vec<BlobLocation>> {
        Self::list_blobs(url, options, false)
    }

    /// As [`BlobLocation::list_dataset`], descending into sub-"directories" too (hive-partitioned
    /// trees such as `date=2024-01-01/part-0.parquet`); a `.x` or `_x` directory is skipped
    /// whole, as in local datasets (`_delta_log`, `_temporary`).
    pub fn list_tree(url: &str, options: &StorageOptions) -> Result<Vec<BlobLocation>> {
        Self::list_blobs(url, options, true)
    }

    fn list_blobs(url: &str, options: &StorageOptions, descend: bool) -> Result<Vec<BlobLocation>> {
        let directory = Self::parse_with(url, options, true)?;
        let root = directory.path.clone();
        let base = url.trim_end_matches('/');
        let mut files: Vec<BlobLocation> = Vec::new();
        let mut pending = vec![root.clone()];
        while let Some(prefix) = pending.pop() {
            let listed = block_on(directory.store.list_with_delimiter(Some(&prefix)))?
                .map_err(|e| storage_error("listing", url, e))?;
            if descend {
                pending.extend(listed.common_prefixes.into_iter().filter(|sub| {
                    sub.filename()
                        .is_some_and(|name| !name.starts_with(['.', '_']))
                }));
            }
            files.extend(listed.objects.into_iter().filter_map(|meta| {
                let name = meta.location.filename()?.to_owned();
                let lower = name.to_ascii_lowercase();
                let dataset = [".parquet", ".pq", ".parq", ".csv"]
                    .iter()
                    .any(|ext| lower.ends_with(ext));
                if !dataset || name.starts_with(['.', '_']) {
                    return None;
                }
                let relative = meta
                    .location
                    .as_ref()
                    .strip_prefix(root.as_ref())?
                    .trim_start_matches('/')
                    .to_owned();
                Some(BlobLocation {
                    url: format!("{base}/{relative}"),
                    store: directory.store.clone(),
                    path: meta.location,
                    options: directory.options.clone(),
                    endpoint: directory.endpoint.clone(),
                })
            }));
        }
        files.sort_by(|a, b| a.url.cmp(&b.url));
        if files.is_empty() {
            return Err(storage_error(
                "listing",
                url,
                object_store::Error::NotFound {
                    path: root.to_string(),
                    source: "it holds no .parquet or .csv blobs".into(),
                },
            ));
        }
        Ok(files)
    }

    /// Every blob under the "directory" `url` (`az://container/prefix/`) at any depth, hidden
    /// ones (`.x`, `_x`) included, with its ETag, sorted; empty when there is none.
    pub fn list_all(
        url: &str,
        options: &StorageOptions,
    ) -> Result<Vec<(BlobLocation, Option<String>)>> {
        let directory = Self::parse_with(url, options, true)?;
        let root = directory.path.clone();
        let base = url.trim_end_matches('/');
        let mut found = Vec::new();
        let mut pending = vec![root.clone()];
        while let Some(prefix) = pending.pop() {
            let listed = block_on(directory.store.list_with_delimiter(Some(&prefix)))?
                .map_err(|e| storage_error("listing", url, e))?;
            pending.extend(listed.common_prefixes);
            found.extend(listed.objects.into_iter().filter_map(|meta| {
                let relative = meta
                    .location
                    .as_ref()
                    .strip_prefix(root.as_ref())?
                    .trim_start_matches('/')
                    .to_owned();
                let blob = BlobLocation {
                    url: format!("{base}/{relative}"),
                    store: directory.store.clone(),
                    path: meta.location,
                    options: directory.options.clone(),
                    endpoint: directory.endpoint.clone(),
                };
                Some((blob, meta.e_tag))
            }));
        }
        found.sort_by(|a, b| a.0.url.cmp(&b.0.url));
        Ok(found)
    }

    /// The name after the last `/`.
    pub fn file_name(&self) -> &str {
        self.path.filename().unwrap_or_default()
    }

    fn parse_with(url: &str, options: &StorageOptions, directory: bool) -> Result<Self> {
        if !is_blob_url(url) {
            return Err(invalid_url(url, "is not an Azure Blob URL"));
        }
        let parsed =
            url::Url::parse(url).map_err(|e| invalid_url(url, &format!("is not a URL ({e})")))?;
        let host = parsed.host_str().unwrap_or_default();
        let container = match host.split_once('@') {
            Some((container, _)) => container.to_owned(),
            None if parsed.username().is_empty() => host.to_owned(),
            None => parsed.username().to_owned(),
        };
        if container.is_empty() {
            return Err(invalid_url(url, "names no container"));
        }
        check_container(url, &container)?;
        if parsed.scheme().starts_with("abfs")
            && !parsed.username().is_empty()
            && !host.ends_with(".dfs.core.windows.net")
            && !host.ends_with(".blob.core.windows.net")
        {
            return Err(invalid_url(
                url,
                "has an account host that is not <account>.dfs.core.windows.net",
            ));
        }
        let blob_path = parsed.path().trim_start_matches('/');
        if !directory && (blob_path.is_empty() || blob_path.ends_with('/')) {
            return Err(invalid_url(
                url,
                "names no blob (the path is empty or ends with '/')",
            ));
        }
        let blob_path = blob_path.trim_end_matches('/');
        let path = ObjectPath::parse(blob_path)
            .map_err(|e| invalid_url(url, &format!("has an invalid blob path ({e})")))?;
        let mut builder = MicrosoftAzureBuilder::from_env().with_url(url);
        for (key, value) in &options.options {
            let config_key: AzureConfigKey = key.parse().map_err(|_| Error::InvalidArgument {
                name: "storage_options",
                message: format!("'{key}' is not an Azure storage option (e.g. account_name, account_key, sas_token, use_emulator, endpoint, client_id)"),
            })?;
            builder = builder.with_config(config_key, value.clone());
        }
        if let Some(credential) = &options.credential {
            builder = builder.with_credentials(Arc::new(TokenCredentialProvider {
                credential: credential.clone(),
                cached: tokio::sync::Mutex::new(None),
            }));
        }
        let config = |key: AzureConfigKey| builder.get_config_value(&key).filter(|v| !v.is_empty());
        let emulator = config(AzureConfigKey::UseEmulator).is_some_and(|v| v == "true");
        // abfss://container@account.dfs.core.windows.net names the account (and wins over the
        // options, as in object_store); az:// takes it from the options or environment.
        let account_host = match host.split_once('@') {
            Some((_, account_host)) => Some(account_host),
            None if !parsed.username().is_empty() => Some(host),
            None => None,
        };
        let account = match account_host {
            Some(account_host) => account_host.split('.').next().map(str::to_owned),
            None => config(AzureConfigKey::AccountName),
        };
        let account = match (account, emulator) {
            (Some(account), _) => account,
            (None, true) => "devstoreaccount1".to_owned(),
            (None, false) => String::new(), // build() below reports the missing account
        };
        let service = if emulator {
            let base = std::env::var("AZURITE_BLOB_STORAGE_URL")
                .unwrap_or_else(|_| "http://127.0.0.1:10000".into());
            format!("{}/{account}", base.trim_end_matches('/'))
        } else {
            config(AzureConfigKey::Endpoint)
                .unwrap_or_else(|| format!("https://{account}.blob.core.windows.net"))
        };
        let container_url =
            url::Url::parse(&format!("{}/{container}", service.trim_end_matches('/'))).map_err(
                |e| invalid_url(url, &format!("gives an invalid service endpoint ({e})")),
            )?;
        let store = builder.build().map_err(|e| Error::InvalidArgument {
            name: "storage_options",
            message: format!("cannot reach '{url}' with these options: {e}"),
        })?;
        let endpoint = Arc::new(Endpoint {
            container_url,
            account,
            credentials: store.credentials().clone(),
        });
        Ok(Self {
            url: url.to_owned(),
            store: Arc::new(store),
            path,
            options: options.clone(),
            endpoint,
        })
    }

    /// The URL this location was named by.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The blob's size in bytes (`StorageNotFound` style error when it does not exist).
    pub fn size(&self) -> Result<u64> {
        let meta = block_on(self.store.head(&self.path))?
            .map_err(|e| storage_error("reading", &self.url, e))?;
        Ok(meta.size)
    }

    /// The blob's current ETag (`None` when the storage gives none).
    pub fn etag(&self) -> Result<Option<String>> {
        Ok(self.size_and_etag()?.1)
    }

    /// The blob's size and current ETag, from one request.
    pub fn size_and_etag(&self) -> Result<(u64, Option<String>)> {
        let meta = block_on(self.store.head(&self.path))?
            .map_err(|e| storage_error("reading", &self.url, e))?;
        Ok((meta.size, meta.e_tag))
    }

    /// Whether the blob exists.
    pub fn exists(&self) -> Result<bool> {
        match block_on(self.store.head(&self.path))? {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(storage_error("reading", &self.url, e)),
        }
    }

    /// The whole blob and the ETag it was read at.
    pub fn get_with_etag(&self) -> Result<(Bytes, Option<String>)> {
        let result = block_on(self.store.get_opts(&self.path, Default::default()))?
            .map_err(|e| storage_error("reading", &self.url, e))?;
        let etag = result.meta.e_tag.clone();
        let data = block_on(result.bytes())?.map_err(|e| storage_error("reading", &self.url, e))?;
        Ok((data, etag))
    }

    /// The whole blob if its ETag is still `etag` (`If-Match`); `None` when it changed.
    pub fn get_if_unchanged(&self, etag: &str) -> Result<Option<Bytes>> {
        let options = object_store::GetOptions {
            if_match: Some(etag.to_owned()),
            ..Default::default()
        };
        let result = match block_on(self.store.get_opts(&self.path, options))? {
            Ok(result) => result,
            Err(object_store::Error::Precondition { .. }) => return Ok(None),
            Err(e) => return Err(storage_error("reading", &self.url, e)),
        };
        let data = block_on(result.bytes())?.map_err(|e| storage_error("reading", &self.url, e))?;
        Ok(Some(data))
    }

    /// Replace the blob with `data` in one request, only if its ETag is still `etag`
    /// (`If-Match`): the new ETag, or `None` when it changed since (nothing was written).
    pub fn put_if_unchanged(&self, data: Vec<u8>, etag: &str) -> Result<Option<String>> {
        let version = object_store::UpdateVersion {
            e_tag: Some(etag.to_owned()),
            version: None,
        };
        self.put_with_mode(data, object_store::PutMode::Update(version))
    }

    /// Create the blob with `data` in one request, only if it does not exist yet
    /// (`If-None-Match: *`): its ETag, or `None` when a blob of that name exists (nothing was
    /// written).
    pub fn put_if_absent(&self, data: Vec<u8>) -> Result<Option<String>> {
        self.put_with_mode(data, object_store::PutMode::Create)
    }

    fn put_with_mode(&self, data: Vec<u8>, mode: object_store::PutMode) -> Result<Option<String>> {
        let put = self
            .store
            .put_opts(&self.path, PutPayload::from(data), mode.into());
        match block_on(put)? {
            Ok(done) => done.e_tag.map(Some).ok_or_else(|| {
                storage_error(
                    "writing",
                    &self.url,
                    object_store::Error::Generic {
                        store: "MicrosoftAzure",
                        source: "the storage gave no ETag for the blob it wrote".into(),
                    },
                )
            }),
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. },
            ) => Ok(None),
            Err(e) => Err(storage_error("writing", &self.url, e)),
        }
    }

    /// Delete the blob in one request, only if its ETag is still `etag` (Delete Blob with
    /// `If-Match`, which `object_store` cannot send); `false` when it changed since or is
    /// already gone (nothing was deleted). A blob with snapshots is refused by the service
    /// (`SnapshotsPresent`): its snapshots are the account owner's to keep or delete.
    pub fn delete_if_unchanged(&self, etag: &str) -> Result<bool> {
        let rest = super::blob_rest::RestBlob::open(&self.url, &self.options)?;
        let answer = rest.call(
            "deleting",
            http::Method::DELETE,
            None,
            &[("if-match", etag.to_owned())],
            Vec::new(),
        )?;
        match answer.status {
            200..=299 => Ok(true),
            412 => Ok(false),
            404 if answer.code == "BlobNotFound" => Ok(false),
            _ => Err(super::blob_rest::http_error("deleting", &self.url, &answer)),
        }
    }

    /// A random-access reader of the blob.
    pub fn reader(&self) -> Result<BlobReader> {
        let len = self.size()?;
        Ok(BlobReader {
            location: self.clone(),
            len,
            position: 0,
            buffer: Bytes::new(),
            buffer_start: 0,
            read_ahead: self.options.read_ahead_bytes(),
            window: 0,
            stats: Arc::new(ReadStats::default()),
            etag: None,
        })
    }

    /// Random access for the Parquet reader: the footer and each column chunk are fetched
    /// with one ranged GET each, so masking reads only what it decodes.
    pub fn chunks(&self) -> Result<BlobChunks> {
        Ok(BlobChunks {
            location: self.clone(),
            len: self.size()?,
            etag: None,
        })
    }

    /// Like [`chunks`](Self::chunks) for a blob already known to be `len` bytes long.
    pub fn chunks_of_size(&self, len: u64) -> BlobChunks {
        BlobChunks {
            location: self.clone(),
            len,
            etag: None,
        }
    }

    /// Like [`chunks`](Self::chunks) for the blob as it was when its ETag was `etag` and its
    /// size `len`: every ranged GET carries `If-Match: <etag>`, so once the blob changes
    /// every read fails rather than mixing two versions.
    pub fn chunks_if_unchanged(&self, etag: &str, len: u64) -> BlobChunks {
        BlobChunks {
            location: self.clone(),
            len,
            etag: Some(etag.to_owned()),
        }
    }

    /// Bytes `range` of the blob; with `etag`, only while the blob still has that ETag.
    fn get_range_at(&self, range: std::ops::Range<u64>, etag: Option<&str>) -> Result<Bytes> {
        let options = object_store::GetOptions {
            range: Some(range.into()),
            if_match: etag.map(str::to_owned),
            ..Default::default()
        };
        let result = match block_on(self.store.get_opts(&self.path, options))? {
            Ok(result) => result,
            Err(object_store::Error::Precondition { .. }) => {
                return Err(Error::ConcurrentModification {
                    path: PathBuf::from(&self.url),
                    message: "the blob changed while it was being read".into(),
                })
            }
            Err(e) => return Err(storage_error("reading", &self.url, e)),
        };
        block_on(result.bytes())?.map_err(|e| storage_error("reading", &self.url, e))
    }

    /// A writer whose content becomes the blob only when [`BlobWriter::finish`] succeeds.
    pub fn writer(&self) -> Result<BlobWriter> {
        Ok(BlobWriter {
            location: self.clone(),
            part_size: self.options.part_size_bytes(),
            max_in_flight: self.options.max_parts_in_flight(),
            buffer: Vec::new(),
            upload: None,
            in_flight: VecDeque::new(),
            written: 0,
            failed: false,
            finished: false,
        })
    }
}

/// Requests and bytes a [`BlobReader`] fetched.
#[derive(Debug, Default)]
pub struct ReadStats {
    ranges: AtomicU64,
    bytes: AtomicU64,
}

impl ReadStats {
    /// Ranged GETs made.
    pub fn ranges(&self) -> u64 {
        self.ranges.load(Ordering::Relaxed)
    }
    /// Bytes fetched.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// A blob as a Parquet [`ChunkReader`](parquet::file::reader::ChunkReader): cheap to clone,
/// every request a ranged GET of exactly the bytes asked for.
#[derive(Clone, Debug)]
pub struct BlobChunks {
    location: BlobLocation,
    len: u64,
    /// Read only this version of the blob (`If-Match`), when set.
    etag: Option<String>,
}

impl parquet::file::reader::Length for BlobChunks {
    fn len(&self) -> u64 {
        self.len
    }
}

impl parquet::file::reader::ChunkReader for BlobChunks {
    type T = BlobReader;

    fn get_read(&self, start: u64) -> parquet::errors::Result<BlobReader> {
        let mut reader = BlobReader {
            location: self.location.clone(),
            len: self.len,
            position: 0,
            buffer: Bytes::new(),
            buffer_start: 0,
            read_ahead: self.location.options.read_ahead_bytes(),
            window: 0,
            stats: Arc::new(ReadStats::default()),
            etag: self.etag.clone(),
        };
        reader.seek(SeekFrom::Start(start))?;
        Ok(reader)
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let end = start.saturating_add(length as u64).min(self.len);
        let fetched = self
            .location
            .get_range_at(start..end, self.etag.as_deref())
            .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))?;
        if fetched.len() != length {
            return Err(parquet::errors::ParquetError::EOF(format!(
                "'{}' ended {} bytes into a {length}-byte range at {start}",
                self.location.url,
                fetched.len()
            )));
        }
        Ok(fetched)
    }
}

/// `Read + Seek` over a blob with ranged GETs and a read-ahead window.
pub struct BlobReader {
    location: BlobLocation,
    len: u64,
    position: u64,
    buffer: Bytes,
    buffer_start: u64,
    read_ahead: usize,
    /// Size of the next ranged read: grows while reads are sequential.
    window: usize,
    stats: Arc<ReadStats>,
    /// Read only this version of the blob (`If-Match`), when set.
    etag: Option<String>,
}

/// First ranged read of a [`BlobReader`] and after every jump.
const MIN_READ_WINDOW_BYTES: usize = 1024 * 1024;

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("url", &self.location.url)
            .field("len", &self.len)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl BlobReader {
    /// The blob's size.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the blob is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// What this reader fetched so far.
    pub fn stats(&self) -> Arc<ReadStats> {
        self.stats.clone()
    }

    fn fill(&mut self) -> Result<()> {
        let sequential = !self.buffer.is_empty()
            && self.position == self.buffer_start + self.buffer.len() as u64;
        let smallest = MIN_READ_WINDOW_BYTES.min(self.read_ahead);
        self.window = if sequential {
            self.window
                .saturating_mul(2)
                .clamp(smallest, self.read_ahead)
        } else {
            smallest
        };
        let end = self
            .len
            .min(self.position.saturating_add(self.window as u64));
        let bytes = self
            .location
            .get_range_at(self.position..end, self.etag.as_deref())?;
        self.stats.ranges.fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.buffer_start = self.position;
        self.buffer = bytes;
        Ok(())
    }
}

impl Read for BlobReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if out.is_empty() || self.position >= self.len {
            return Ok(0);
        }
        let buffered = self.position >= self.buffer_start
            && self.position < self.buffer_start + self.buffer.len() as u64;
        if !buffered {
            self.fill().map_err(crate::envelope::to_io_error)?;
            if self.buffer.is_empty() {
                return Ok(0);
            }
        }
        let offset = (self.position - self.buffer_start) as usize;
        let available = &self.buffer[offset..];
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.position += n as u64;
        Ok(n)
    }
}

impl Seek for BlobReader {
    fn seek(&mut self, target: SeekFrom) -> std::io::Result<u64> {
        let position = match target {
            SeekFrom::Start(position) => Some(position),
            SeekFrom::End(delta) => self.len.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        match position {
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

/// `Write` that uploads a block blob in parts and commits it only in [`finish`](Self::finish).
pub struct BlobWriter {
    location: BlobLocation,
    part_size: usize,
    max_in_flight: usize,
    buffer: Vec<u8>,
    upload: Option<Box<dyn MultipartUpload>>,
    in_flight: VecDeque<tokio::task::JoinHandle<object_store::Result<()>>>,
    written: u64,
    failed: bool,
    finished: bool,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("url", &self.location.url)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl BlobWriter {
    fn upload_error(&self, error: object_store::Error) -> Error {
        storage_error("uploading", &self.location.url, error)
    }

    /// Start a block upload of the buffered part, waiting for older parts to bound memory.
    fn send_part(&mut self) -> Result<()> {
        if self.upload.is_none() {
            let upload = block_on(self.location.store.put_multipart(&self.location.path))?
                .map_err(|e| self.upload_error(e))?;
            self.upload = Some(upload);
        }
        let part = std::mem::replace(&mut self.buffer, Vec::with_capacity(self.part_size));
        let Some(upload) = self.upload.as_mut() else {
            return Err(Error::invalid_data(None, "the upload was not started"));
        };
        let future = upload.put_part(PutPayload::from(Bytes::from(part)));
        self.in_flight.push_back(runtime()?.spawn(future));
        while self.in_flight.len() > self.max_in_flight {
            self.wait_oldest()?;
        }
        Ok(())
    }

    fn wait_oldest(&mut self) -> Result<()> {
        if let Some(handle) = self.in_flight.pop_front() {
            match block_on(handle)? {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(self.upload_error(e)),
                Err(join) => {
                    return Err(Error::invalid_data(
                        None,
                        format!(
                            "uploading a block of '{}' failed: {join}",
                            self.location.url
                        ),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Upload what is left and commit the blob; returns its size. Until this returns `Ok`, no
    /// blob (or the previous version of it) is visible under the name.
    pub fn finish(mut self) -> Result<u64> {
        if self.failed {
            return Err(Error::invalid_data(
                None,
                "an earlier write failed; the upload was abandoned",
            ));
        }
        let result = self.commit();
        if result.is_err() {
            self.abort();
        }
        self.finished = true;
        result
    }

    fn commit(&mut self) -> Result<u64> {
        if self.upload.is_none() {
            // Smaller than one part: one atomic Put Blob.
            let payload = PutPayload::from(Bytes::from(std::mem::take(&mut self.buffer)));
            block_on(self.location.store.put(&self.location.path, payload))?
                .map_err(|e| self.upload_error(e))?;
            return Ok(self.written);
        }
        if !self.buffer.is_empty() {
            self.send_part()?;
        }
        while !self.in_flight.is_empty() {
            self.wait_oldest()?;
        }
        let Some(upload) = self.upload.as_mut() else {
            return Err(Error::invalid_data(None, "the upload was not started"));
        };
        let completed = block_on(upload.complete())?;
        completed.map_err(|e| storage_error("committing", &self.location.url, e))?;
        Ok(self.written)
    }

    /// Abandon the upload: uncommitted blocks are never visible (Azure discards them).
    fn abort(&mut self) {
        for handle in self.in_flight.drain(..) {
            handle.abort();
        }
        if let Some(mut upload) = self.upload.take() {
            // Best effort: for block blobs this is a no-op, the blocks simply stay uncommitted.
            let _ = block_on(upload.abort());
        }
    }
}

impl Write for BlobWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.failed {
            return Err(std::io::Error::other("an earlier write failed"));
        }
        let mut rest = data;
        while !rest.is_empty() {
            if self.buffer.len() == self.part_size {
                if let Err(e) = self.send_part() {
                    self.failed = true;
                    return Err(crate::envelope::to_io_error(e));
                }
            }
            let take = (self.part_size - self.buffer.len()).min(rest.len());
            if self.buffer.capacity() == 0 {
                self.buffer.reserve(self.part_size.min(1024 * 1024));
            }
            self.buffer.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        self.written += data.len() as u64;
        Ok(data.len())
    }

    /// Parts are uploaded whole; flushing does not cut a short part.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.finished {
            self.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_blob_endpoints_address_the_blob_as_object_store_does() {
        let options =
            StorageOptions::from_pairs([("account_name", "acct"), ("account_key", "a2V5")]);
        let plain = blob_endpoint("az://logs/audit/2026/log.jsonl", &options).unwrap();
        assert_eq!(
            plain.blob_url.as_str(),
            "https://acct.blob.core.windows.net/logs/audit/2026/log.jsonl"
        );
        assert_eq!(plain.account, "acct");
        let abfss =
            blob_endpoint("abfss://logs@other.dfs.core.windows.net/a.jsonl", &options).unwrap();
        assert_eq!(
            abfss.blob_url.as_str(),
            "https://other.blob.core.windows.net/logs/a.jsonl"
        );
        assert_eq!(abfss.account, "other");
        let private = StorageOptions::from_pairs([
            ("account_name", "acct"),
            ("account_key", "a2V5"),
            ("endpoint", "https://blobs.internal.example:8443/"),
        ]);
        assert_eq!(
            blob_endpoint("az://logs/a.jsonl", &private)
                .unwrap()
                .blob_url
                .as_str(),
            "https://blobs.internal.example:8443/logs/a.jsonl"
        );
    }

    #[test]
    fn urls_are_checked_before_any_request() {
        let options =
            StorageOptions::from_pairs([("account_name", "acct"), ("account_key", "a2V5")]);
        for bad in [
            "az://",
            "az:///path",
            "az://Bad_Container/x",
            "az://ab/x",
            "az://container/",
            "az://container",
            "abfss://c0ntainer@acct.example.com/x",
            "s3://bucket/x",
        ] {
            assert!(
                matches!(
                    BlobLocation::parse(bad, &options),
                    Err(Error::InvalidArgument { name: "url", .. })
                ),
                "{bad}"
            );
        }
        let unknown = StorageOptions::from_pairs([("acount_name", "typo")]);
        assert!(matches!(
            BlobLocation::parse("az://raw/x", &unknown),
            Err(Error::InvalidArgument {
                name: "storage_options",
                ..
            })
        ));
        let ok = BlobLocation::parse("abfss://raw@acct.dfs.core.windows.net/a/b.amlg", &options)
            .unwrap();
        assert_eq!(ok.path.as_ref(), "a/b.amlg");
        assert!(!format!("{options:?}").contains("a2V5"));
    }
}
