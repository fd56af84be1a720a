//! Azure Key Vault (and Managed HSM) key-encryption keys.
//!
//! [`AzureKeyVault`] is a key provider for one vault; [`AzureKeyVault::kek`] gives an
//! [`AzureKek`] for one key, pinned to one version: every DEK it wraps is recorded in the
//! envelope header under the full key id (`https://<vault>/keys/<name>/<version>`) and the wrap
//! algorithm, and unwrapping always calls Key Vault with exactly that version and algorithm, so
//! rotating the key in Key Vault never strands existing data.
//!
//! - Algorithms: RSA-OAEP-256 by default for RSA keys, RSA-OAEP on request, A256KW for Managed
//!   HSM `oct-HSM` AES keys. A key of the wrong type for the algorithm is refused before any data
//!   is touched.
//! - Calls go through the official Azure SDK for Rust (`azure_security_keyvault_keys::KeyClient`
//!   on the `azure_core` pipeline) with its bearer-challenge authorizer, and a retry policy of
//!   ours ([`RetryLimits`]): 408/429/5xx and transport errors are retried with bounded exponential
//!   backoff and jitter, honouring `Retry-After` up to a cap; 401/403/404 are not retried and
//!   become [`Error::KeyVaultAuthentication`], [`Error::KeyVaultPermission`] and
//!   [`Error::KeyVaultKeyNotFound`], naming the vault, the key, the identity and the permission.
//! - Credentials: any `azure_core` [`TokenCredential`], or by default [`DefaultCredentialChain`]
//!   (environment service principal, workload identity, managed identity, Azure CLI).
//! - Unwrapped DEKs go through a [`DekCache`] shared by the vault's KEKs: one Key Vault call per
//!   DEK per cache lifetime, however many files, row groups or columns share it.
//!
//! ```no_run
//! use amlguard::envelope::{decrypt_bytes, encrypt_bytes, EncryptionContext};
//! use amlguard::keys::{AzureKeyVault, AzureKeyVaultOptions, KeyEncryptionKey};
//! let vault = AzureKeyVault::new("https://contoso-ml.vault.azure.net", None,
//!                                AzureKeyVaultOptions::default()).unwrap();
//! let kek = vault.kek("training-kek", None, None).unwrap(); // latest version, RSA-OAEP-256
//! let context = EncryptionContext::from([("dataset".to_string(), "patients".to_string())]);
//! let sealed = encrypt_bytes(b"rows", &[&kek], &context).unwrap();
//! assert_eq!(decrypt_bytes(&sealed, &[&kek], &context).unwrap().as_slice(), b"rows");
//! ```

mod credential;
mod retry;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use azure_core::error::{Error as AzureError, ErrorKind as AzureErrorKind};
use azure_core::http::{ClientOptions, RetryOptions, Transport, Url};
use azure_security_keyvault_keys::models::{
    EncryptionAlgorithm, KeyClientGetKeyOptions, KeyClientUnwrapKeyOptions,
    KeyClientWrapKeyOptions, KeyOperationParameters, KeyType,
};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use zeroize::Zeroizing;

pub use credential::{
    AzureMlManagedIdentityCredential, DefaultCredentialChain, NamedCredential, TOKEN_REFRESH_MARGIN,
};
pub use retry::{RetryLimits, RetryStats};

use super::kek::{DekCache, DekCacheLimits, DeletedKeyRetention, KeyEncryptionKey};
use crate::error::{Error, Result};
use crate::parallel::block_on;

/// Provider name of Azure Key Vault KEKs, as recorded in envelope headers.
pub const AZURE_KEY_VAULT_PROVIDER: &str = "azure-key-vault";

/// Key Vault's key-wrap algorithms amlguard uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyWrapAlgorithm {
    /// RSA-OAEP with SHA-256 and MGF1-SHA-256 (the default for RSA keys).
    RsaOaep256,
    /// RSA-OAEP with SHA-1 and MGF1-SHA-1 (for interoperability with older writers).
    RsaOaep,
    /// AES-256 key wrap (RFC 3394) with a Managed HSM `oct-HSM` key.
    A256Kw,
}

impl KeyWrapAlgorithm {
    /// The JWA name Key Vault uses, also recorded in the header.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RsaOaep256 => "RSA-OAEP-256",
            Self::RsaOaep => "RSA-OAEP",
            Self::A256Kw => "A256KW",
        }
    }

    /// Parse a JWA name (`RSA-OAEP-256`, `RSA-OAEP`, `A256KW`).
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "RSA-OAEP-256" => Ok(Self::RsaOaep256),
            "RSA-OAEP" => Ok(Self::RsaOaep),
            "A256KW" => Ok(Self::A256Kw),
            other => Err(Error::InvalidArgument {
                name: "key-wrap algorithm",
                message: format!(
                    "'{other}' is not supported for Azure Key Vault; use RSA-OAEP-256, RSA-OAEP or A256KW"
                ),
            }),
        }
    }

    fn is_rsa(self) -> bool {
        matches!(self, Self::RsaOaep256 | Self::RsaOaep)
    }

    fn to_azure(self) -> EncryptionAlgorithm {
        match self {
            Self::RsaOaep256 => EncryptionAlgorithm::RsaOaep256,
            Self::RsaOaep => EncryptionAlgorithm::RsaOaep,
            Self::A256Kw => EncryptionAlgorithm::A256Kw,
        }
    }
}

/// Knobs of an [`AzureKeyVault`].
#[derive(Clone, Debug)]
pub struct AzureKeyVaultOptions {
    /// Extra trusted root certificates (a PEM bundle), for private endpoints behind a TLS
    /// inspecting proxy and for test servers. The system roots stay trusted.
    pub ca_bundle: Option<PathBuf>,
    /// Time limit of one HTTP attempt (a timed-out attempt is retried).
    pub request_timeout: Duration,
    /// Retry limits.
    pub retry: RetryLimits,
    /// Limits of the DEK cache shared by this vault's KEKs (`None`: no cache, every unwrap
    /// calls Key Vault).
    pub dek_cache: Option<DekCacheLimits>,
    /// Key Vault REST API version (`None`: the SDK's default).
    pub api_version: Option<String>,
}

impl Default for AzureKeyVaultOptions {
    fn default() -> Self {
        Self {
            ca_bundle: None,
            request_timeout: Duration::from_secs(30),
            retry: RetryLimits::default(),
            dek_cache: Some(DekCacheLimits::default()),
            api_version: None,
        }
    }
}

enum Identity {
    Named(String),
    Chain(Arc<DefaultCredentialChain>),
}

impl Identity {
    fn describe(&self) -> String {
        match self {
            Identity::Named(name) => name.clone(),
            Identity::Chain(chain) => chain.describe(),
        }
    }
}

struct Vault {
    url: String,
    client: KeyClient,
    identity: Identity,
    cache: Option<DekCache>,
    retry_stats: Arc<RetryStats>,
}

/// One Azure Key Vault (or Managed HSM) as a key provider. Cheap to clone.
#[derive(Clone)]
pub struct AzureKeyVault {
    vault: Arc<Vault>,
}

impl std::fmt::Debug for AzureKeyVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureKeyVault")
            .field("url", &self.vault.url)
            .field("identity", &self.vault.identity.describe())
            .finish_non_exhaustive()
    }
}

/// A reqwest-based transport with the given timeout and extra roots.
pub(crate) fn http_transport(
    ca_bundle: Option<&std::path::Path>,
    request_timeout: Duration,
) -> Result<Transport> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(request_timeout.min(Duration::from_secs(10)))
        .timeout(request_timeout)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = ca_bundle {
        let pem = std::fs::read(path).map_err(|e| Error::io("reading the CA bundle", path, e))?;
        let certificates =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| Error::InvalidArgument {
                name: "ca_bundle",
                message: format!("'{}' is not a PEM certificate bundle: {e}", path.display()),
            })?;
        if certificates.is_empty() {
            return Err(Error::InvalidArgument {
                name: "ca_bundle",
                message: format!("'{}' holds no PEM certificate", path.display()),
            });
        }
        builder = builder.tls_certs_merge(certificates);
    }
    let client = builder.build().map_err(|e| Error::InvalidArgument {
        name: "HTTP client",
        message: format!("cannot build the HTTP client: {e}"),
    })?;
    Ok(Transport::new(Arc::new(client)))
}

fn parse_vault_url(vault_url: &str) -> Result<Url> {
    let invalid = |why: &str| {
        Error::InvalidArgument {
        name: "vault url",
        message: format!(
            "'{vault_url}' {why}; expected https://<vault-name>.vault.azure.net or https://<hsm-name>.managedhsm.azure.net"
        ),
    }
    };
    let url = Url::parse(vault_url).map_err(|_| invalid("is not a URL"))?;
    if url.scheme() != "https" {
        return Err(invalid("does not use https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("has no host"));
    }
    if !(url.path().is_empty() || url.path() == "/") || url.query().is_some() {
        return Err(invalid("has a path or query"));
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn check_key_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 127
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            name: "key name",
            message: format!(
                "'{name}' is not a Key Vault key name (1-127 letters, digits and dashes)"
            ),
        })
    }
}

fn check_version(version: &str) -> Result<()> {
    if !version.is_empty()
        && version.len() <= 64
        && version.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            name: "key version",
            message: format!("'{version}' is not a Key Vault key version (letters and digits)"),
        })
    }
}

/// A parsed Key Vault key id `https://<vault>/keys/<name>/<version>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyIdParts {
    pub(crate) origin: String,
    pub(crate) name: String,
    pub(crate) version: String,
}

pub(crate) fn parse_key_id(key_id: &str) -> Option<KeyIdParts> {
    let url = Url::parse(key_id).ok()?;
    let segments: Vec<&str> = url.path_segments()?.collect();
    match segments.as_slice() {
        ["keys", name, version] if !name.is_empty() && !version.is_empty() => Some(KeyIdParts {
            origin: url.origin().ascii_serialization().to_ascii_lowercase(),
            name: (*name).to_owned(),
            version: (*version).to_owned(),
        }),
        _ => None,
    }
}

/// Which Key Vault operation a call was, for error messages.
#[derive(Clone, Copy)]
enum Operation {
    Get,
    WrapKey,
    UnwrapKey,
}

impl Operation {
    fn permission(self) -> &'static str {
        match self {
            Operation::Get => "keys/get",
            Operation::WrapKey => "keys/wrapKey",
            Operation::UnwrapKey => "keys/unwrapKey",
        }
    }
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(serde::Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

impl Vault {
    /// Turn an SDK error into a typed amlguard error naming vault, key, identity, permission.
    fn map_error(&self, error: AzureError, operation: Operation, key: &str) -> Error {
        let vault = self.url.clone();
        let key = key.to_owned();
        match error.kind() {
            AzureErrorKind::HttpResponse {
                status,
                raw_response,
                error_code,
            } => {
                let status = u16::from(*status);
                let detail = raw_response
                    .as_ref()
                    .and_then(|raw| serde_json::from_slice::<ErrorBody>(raw.body().as_ref()).ok())
                    .map(|body| {
                        if body.error.code.is_empty() {
                            body.error.message
                        } else {
                            format!("{}: {}", body.error.code, body.error.message)
                        }
                    })
                    .or_else(|| error_code.clone())
                    .unwrap_or_else(|| format!("HTTP {status}"));
                match status {
                    401 => Error::KeyVaultAuthentication {
                        vault,
                        key,
                        identity: self.identity.describe(),
                        message: detail,
                    },
                    403 => Error::KeyVaultPermission {
                        vault,
                        key,
                        identity: self.identity.describe(),
                        permission: operation.permission().to_owned(),
                        message: detail,
                    },
                    404 => Error::KeyVaultKeyNotFound { vault, key },
                    // Key Vault answers 400 BadParameter to a wrapped key that does not decrypt:
                    // to callers that is the same opaque failure as a local KEK's integrity check.
                    // A 400 about the API version or the algorithm stays a Key Vault error (the
                    // key type was checked against the algorithm when the KEK was made).
                    400 if matches!(operation, Operation::UnwrapKey)
                        && detail.starts_with("BadParameter")
                        && !detail.contains("version")
                        && !detail.contains("algorithm") =>
                    {
                        Error::Decryption
                    }
                    429 | 408 | 500..=599 => Error::KeyVault {
                        vault,
                        key,
                        status: Some(status),
                        message: format!(
                            "{detail} (still failing after {} retries within the retry limits)",
                            self.retry_stats.retries()
                        ),
                    },
                    _ => Error::KeyVault {
                        vault,
                        key,
                        status: Some(status),
                        message: detail,
                    },
                }
            }
            AzureErrorKind::Credential => Error::AzureCredential {
                message: format!(
                    "{} could not get a token for {vault}: {}",
                    self.identity.describe(),
                    error_chain(&error)
                ),
            },
            AzureErrorKind::Io | AzureErrorKind::Connection => Error::KeyVault {
                vault,
                key,
                status: None,
                message: format!(
                    "cannot reach the vault (check the vault URL and the network): {}",
                    error_chain(&error)
                ),
            },
            _ => Error::KeyVault {
                vault,
                key,
                status: None,
                message: error_chain(&error),
            },
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let shown = inner.to_string();
        if !text.contains(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        source = inner.source();
    }
    text
}

impl AzureKeyVault {
    /// A provider for the vault at `vault_url` (`https://<name>.vault.azure.net` or a Managed
    /// HSM URL). `credential` is any token credential with a description of its identity for
    /// error messages; `None` uses [`DefaultCredentialChain`]. No call is made yet.
    pub fn new(
        vault_url: &str,
        credential: Option<NamedCredential>,
        options: AzureKeyVaultOptions,
    ) -> Result<Self> {
        let url = parse_vault_url(vault_url)?;
        let transport = http_transport(options.ca_bundle.as_deref(), options.request_timeout)?;
        let (credential, identity): (Arc<dyn TokenCredential>, Identity) = match credential {
            Some(named) => (named.credential, Identity::Named(named.description)),
            None => {
                let chain = Arc::new(DefaultCredentialChain::from_environment(Some(
                    transport.clone(),
                ))?);
                (chain.clone(), Identity::Chain(chain))
            }
        };
        let retry_stats = Arc::new(RetryStats::default());
        let mut client_options = KeyClientOptions {
            client_options: ClientOptions {
                transport: Some(transport),
                retry: RetryOptions::custom(Arc::new(retry::BoundedRetryPolicy::new(
                    options.retry,
                    retry_stats.clone(),
                ))),
                ..Default::default()
            },
            // The challenge names resource https://vault.azure.net, which only matches hosts
            // under vault.azure.net; a loopback test vault cannot match, so it is not checked there.
            verify_challenge_resource: Some(!is_loopback(&url)),
            ..Default::default()
        };
        if let Some(version) = &options.api_version {
            client_options.api_version = version.clone();
        }
        let vault_url = url.as_str().trim_end_matches('/').to_owned();
        let client = KeyClient::new(&vault_url, credential, Some(client_options)).map_err(|e| {
            Error::InvalidArgument {
                name: "vault url",
                message: format!("cannot create a Key Vault client for '{vault_url}': {e}"),
            }
        })?;
        Ok(Self {
            vault: Arc::new(Vault {
                url: vault_url,
                client,
                identity,
                cache: options.dek_cache.map(DekCache::new),
                retry_stats,
            }),
        })
    }

    /// The vault URL (no trailing slash).
    pub fn url(&self) -> &str {
        &self.vault.url
    }

    /// The identity calls are made as, as far as known (never a secret).
    pub fn identity(&self) -> String {
        self.vault.identity.describe()
    }

    /// Retries made and time waited so far, over every call of this vault.
    pub fn retry_stats(&self) -> &RetryStats {
        &self.vault.retry_stats
    }

    /// The DEK cache shared by this vault's KEKs, if enabled.
    pub fn dek_cache(&self) -> Option<&DekCache> {
        self.vault.cache.as_ref()
    }

    /// The KEK for key `name`: `version` pins one version (`None`: the latest, resolved now);
    /// `algorithm` defaults to RSA-OAEP-256 for RSA keys and A256KW for `oct-HSM` keys.
    ///
    /// Reads the key (one `keys/get` call) unless both `version` and `algorithm` are given, and
    /// refuses a key whose type or permitted operations do not fit the algorithm.
    pub fn kek(
        &self,
        name: &str,
        version: Option<&str>,
        algorithm: Option<KeyWrapAlgorithm>,
    ) -> Result<AzureKek> {
        check_key_name(name)?;
        if let Some(version) = version {
            check_version(version)?;
        }
        if let (Some(version), Some(algorithm)) = (version, algorithm) {
            return Ok(AzureKek {
                vault: self.vault.clone(),
                key_id: format!("{}/keys/{name}/{version}", self.vault.url),
                name: name.to_owned(),
                version: version.to_owned(),
                algorithm,
                retention: None,
            });
        }
        let options = KeyClientGetKeyOptions {
            key_version: version.map(str::to_owned),
            ..Default::default()
        };
        let key = block_on(async {
            self.vault
                .client
                .get_key(name, Some(options))
                .await?
                .into_model()
        })?
        .map_err(|e| self.vault.map_error(e, Operation::Get, name))?;
        let jwk = key.key.ok_or_else(|| Error::KeyVault {
            vault: self.vault.url.clone(),
            key: name.to_owned(),
            status: None,
            message: "the key bundle has no key".into(),
        })?;
        let key_id = jwk.kid.clone().unwrap_or_default();
        let parts = parse_key_id(&key_id).ok_or_else(|| Error::KeyVault {
            vault: self.vault.url.clone(),
            key: name.to_owned(),
            status: None,
            message: format!("Key Vault returned an unexpected key id '{key_id}'"),
        })?;
        let wrong_type = |why: String| Error::KeyVault {
            vault: self.vault.url.clone(),
            key: key_id.clone(),
            status: None,
            message: why,
        };
        let is_rsa = matches!(jwk.kty, Some(KeyType::Rsa) | Some(KeyType::RsaHsm));
        let is_aes = matches!(jwk.kty, Some(KeyType::Oct) | Some(KeyType::OctHsm));
        let kty = jwk
            .kty
            .as_ref()
            .map(|k| k.to_string())
            .unwrap_or_else(|| "unknown".into());
        let algorithm = match algorithm {
            Some(algorithm) if algorithm.is_rsa() && !is_rsa => {
                return Err(wrong_type(format!(
                    "{} needs an RSA key, but this key's type is {kty}; use A256KW for oct-HSM keys",
                    algorithm.as_str()
                )))
            }
            Some(KeyWrapAlgorithm::A256Kw) if !is_aes => {
                return Err(wrong_type(format!(
                    "A256KW needs an oct-HSM (AES) key in a Managed HSM, but this key's type is {kty}; use RSA-OAEP-256 for RSA keys"
                )))
            }
            Some(algorithm) => algorithm,
            None if is_rsa => KeyWrapAlgorithm::RsaOaep256,
            None if is_aes => KeyWrapAlgorithm::A256Kw,
            None => {
                return Err(wrong_type(format!(
                    "a key of type {kty} cannot wrap keys; use an RSA key (or an oct-HSM key in a Managed HSM)"
                )))
            }
        };
        if let Some(ops) = &jwk.key_ops {
            for needed in ["wrapKey", "unwrapKey"] {
                if !ops.iter().any(|op| op == needed) {
                    return Err(wrong_type(format!(
                        "the key's permitted operations ({}) do not include {needed}",
                        ops.join(", ")
                    )));
                }
            }
        }
        let retention = key.attributes.as_ref().and_then(|attributes| {
            Some(DeletedKeyRetention {
                recovery_level: attributes.recovery_level.as_ref()?.to_string(),
                recoverable_days: u32::try_from(attributes.recoverable_days?).ok()?,
                source: "provider".into(),
            })
        });
        Ok(AzureKek {
            vault: self.vault.clone(),
            key_id,
            name: parts.name,
            version: parts.version,
            algorithm,
            retention,
        })
    }
}

/// One Key Vault key version as a [`KeyEncryptionKey`]. Holds no key material.
pub struct AzureKek {
    vault: Arc<Vault>,
    key_id: String,
    name: String,
    version: String,
    algorithm: KeyWrapAlgorithm,
    /// Soft-delete retention as the vault reported it when the key was read.
    retention: Option<DeletedKeyRetention>,
}

impl std::fmt::Debug for AzureKek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureKek")
            .field("key_id", &self.key_id)
            .field("algorithm", &self.algorithm.as_str())
            .finish_non_exhaustive()
    }
}

impl AzureKek {
    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pinned key version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The algorithm new DEKs are wrapped with.
    pub fn algorithm(&self) -> KeyWrapAlgorithm {
        self.algorithm
    }

    /// The vault this key lives in.
    pub fn vault_url(&self) -> &str {
        &self.vault.url
    }

    fn unwrap_remote(
        &self,
        wrapped: &[u8],
        key_id: &str,
        algorithm: KeyWrapAlgorithm,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let parts = parse_key_id(key_id).ok_or_else(|| Error::KeyVault {
            vault: self.vault.url.clone(),
            key: key_id.to_owned(),
            status: None,
            message: "the recorded key id is not a Key Vault key id with a version".into(),
        })?;
        let parameters = KeyOperationParameters {
            algorithm: Some(algorithm.to_azure()),
            value: Some(wrapped.to_vec()),
            ..Default::default()
        };
        let result = block_on(async {
            self.vault
                .client
                .unwrap_key(
                    &parts.name,
                    &parts.version,
                    parameters.try_into()?,
                    None::<KeyClientUnwrapKeyOptions<'_>>,
                )
                .await?
                .into_model()
        })?
        .map_err(|e| self.vault.map_error(e, Operation::UnwrapKey, key_id))?;
        match result.result {
            Some(dek) => Ok(Zeroizing::new(dek)),
            None => Err(Error::KeyVault {
                vault: self.vault.url.clone(),
                key: key_id.to_owned(),
                status: None,
                message: "unwrapkey returned no value".into(),
            }),
        }
    }
}

impl KeyEncryptionKey for AzureKek {
    fn key_id(&self) -> String {
        self.key_id.clone()
    }

    fn provider(&self) -> &str {
        AZURE_KEY_VAULT_PROVIDER
    }

    fn deleted_key_retention(&self) -> Option<DeletedKeyRetention> {
        // Soft delete is on in every vault and cannot be turned off; retention is 7-90 days,
        // 90 unless set when the vault was created.
        Some(
            self.retention
                .clone()
                .unwrap_or_else(|| DeletedKeyRetention {
                    recovery_level: "Recoverable+Purgeable".into(),
                    recoverable_days: 90,
                    source: "documented-default".into(),
                }),
        )
    }

    fn wrap_algorithm(&self) -> &str {
        self.algorithm.as_str()
    }

    /// Every version of the same key in the same vault.
    fn accepts(&self, key_id: &str) -> bool {
        match (parse_key_id(key_id), parse_key_id(&self.key_id)) {
            (Some(theirs), Some(ours)) => {
                theirs.origin == ours.origin && theirs.name.eq_ignore_ascii_case(&ours.name)
            }
            _ => false,
        }
    }

    fn wrap(&self, dek: &[u8]) -> Result<Vec<u8>> {
        if dek.is_empty() {
            return Err(Error::InvalidArgument {
                name: "data key",
                message: "cannot wrap an empty key".into(),
            });
        }
        let parameters = KeyOperationParameters {
            algorithm: Some(self.algorithm.to_azure()),
            value: Some(dek.to_vec()),
            ..Default::default()
        };
        let options = KeyClientWrapKeyOptions {
            key_version: Some(self.version.clone()),
            ..Default::default()
        };
        let result = block_on(async {
            self.vault
                .client
                .wrap_key(&self.name, parameters.try_into()?, Some(options))
                .await?
                .into_model()
        })?
        .map_err(|e| self.vault.map_error(e, Operation::WrapKey, &self.key_id))?;
        // The vault answers with the version it used; it must be the one the header records.
        if let Some(kid) = &result.kid {
            if parse_key_id(kid).map(|p| p.version) != Some(self.version.clone()) {
                return Err(Error::KeyVault {
                    vault: self.vault.url.clone(),
                    key: self.key_id.clone(),
                    status: None,
                    message: format!("wrapkey used key '{kid}', not the pinned version"),
                });
            }
        }
        result.result.ok_or_else(|| Error::KeyVault {
            vault: self.vault.url.clone(),
            key: self.key_id.clone(),
            status: None,
            message: "wrapkey returned no value".into(),
        })
    }

    fn unwrap(&self, wrapped: &[u8], key_id: &str) -> Result<Zeroizing<Vec<u8>>> {
        self.unwrap_recorded(wrapped, key_id, self.algorithm.as_str())
    }

    fn unwrap_recorded(
        &self,
        wrapped: &[u8],
        key_id: &str,
        wrap_algorithm: &str,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let algorithm = KeyWrapAlgorithm::parse(wrap_algorithm)?;
        match &self.vault.cache {
            Some(cache) => cache.get_or_unwrap(key_id, wrapped, || {
                self.unwrap_remote(wrapped, key_id, algorithm)
            }),
            None => self.unwrap_remote(wrapped, key_id, algorithm),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_parse_and_match_by_vault_and_name() {
        let parts = parse_key_id("https://Contoso.vault.azure.net/keys/kek/abc123").unwrap();
        assert_eq!(parts.origin, "https://contoso.vault.azure.net");
        assert_eq!(
            (parts.name.as_str(), parts.version.as_str()),
            ("kek", "abc123")
        );
        assert!(parse_key_id("https://contoso.vault.azure.net/keys/kek").is_none());
        assert!(parse_key_id("local:kek@1").is_none());
        assert!(parse_key_id("https://x/secrets/kek/1").is_none());
    }

    #[test]
    fn vault_urls_and_names_are_checked() {
        for bad in [
            "http://x.vault.azure.net",
            "not a url",
            "https://x.vault.azure.net/keys",
            "https://x.vault.azure.net/?a=b",
        ] {
            assert!(
                matches!(parse_vault_url(bad), Err(Error::InvalidArgument { .. })),
                "{bad}"
            );
        }
        assert!(parse_vault_url("https://x.vault.azure.net/").is_ok());
        assert!(check_key_name("training-kek-2").is_ok());
        assert!(check_key_name("bad/name").is_err());
        assert!(check_key_name("").is_err());
        assert!(check_version("3f2a9c").is_ok());
        assert!(check_version("../x").is_err());
        assert_eq!(
            KeyWrapAlgorithm::parse("A256KW").unwrap(),
            KeyWrapAlgorithm::A256Kw
        );
        assert!(KeyWrapAlgorithm::parse("AES-256-KWP").is_err());
    }
}
