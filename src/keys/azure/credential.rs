//! Azure credentials in `DefaultAzureCredential` order.
//!
//! The official `azure_identity` crate (1.x) provides the individual credentials but no longer
//! provides `DefaultAzureCredential` or `EnvironmentCredential`, and its managed-identity
//! credential does not support the Azure ML compute-instance endpoint (`MSI_ENDPOINT` +
//! `MSI_SECRET`). [`DefaultCredentialChain`] fills both gaps:
//!
//! 1. environment service principal: `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`
//!    (authority from `AZURE_AUTHORITY_HOST`) — `azure_identity::ClientSecretCredential`;
//! 2. workload identity: `AZURE_FEDERATED_TOKEN_FILE` — `azure_identity::WorkloadIdentityCredential`;
//! 3. managed identity: `MSI_ENDPOINT` + `MSI_SECRET` (Azure ML compute instances; our
//!    [`AzureMlManagedIdentityCredential`], the documented REST protocol over azure_core), else
//!    `azure_identity::ManagedIdentityCredential` (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER` as on
//!    App Service and AML online endpoints, otherwise IMDS on VMs and compute clusters, behind
//!    a one-second reachability probe so that off Azure the chain moves on at once);
//!    a user-assigned identity is chosen with `AZURE_CLIENT_ID`;
//! 4. Azure CLI (`az account get-access-token`).
//!
//! Like the Python `DefaultAzureCredential`, the chain tries each source in order and keeps the
//! first that returns a token. Tokens are cached by the pipeline's bearer-token policy until
//! shortly before they expire.

use std::sync::{Arc, OnceLock};

use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::error::{Error as AzureError, ErrorKind as AzureErrorKind};
use azure_core::http::{
    ClientOptions, Context, Method, Pipeline, Request, RetryOptions, Transport, Url,
};
use azure_core::time::{Duration as AzureDuration, OffsetDateTime};
use azure_identity::{
    AzureCliCredential, ClientSecretCredential, ClientSecretCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

use crate::error::{Error, Result};

/// One credential of the chain with a description that names the identity (never a secret).
#[derive(Clone, Debug)]
pub struct NamedCredential {
    /// What the credential is, e.g. `environment service principal (client id 1234…)`.
    pub description: String,
    /// The credential.
    pub credential: Arc<dyn TokenCredential>,
}

/// The credential sources of `DefaultAzureCredential`, in order; the first that works is kept.
#[derive(Debug)]
pub struct DefaultCredentialChain {
    sources: Vec<NamedCredential>,
    chosen: OnceLock<usize>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn client_options(transport: &Option<Transport>) -> ClientOptions {
    ClientOptions {
        transport: transport.clone(),
        ..Default::default()
    }
}

impl DefaultCredentialChain {
    /// Build the chain from the environment. `transport` (if any) is used for every token
    /// request, e.g. to trust a private CA.
    pub fn from_environment(transport: Option<Transport>) -> Result<Self> {
        let mut sources = Vec::new();
        let client_id = env("AZURE_CLIENT_ID");
        if let (Some(tenant), Some(client), Some(secret)) = (
            env("AZURE_TENANT_ID"),
            client_id.clone(),
            env("AZURE_CLIENT_SECRET"),
        ) {
            let credential = ClientSecretCredential::new(
                &tenant,
                client.clone(),
                Secret::new(secret),
                Some(ClientSecretCredentialOptions {
                    client_options: client_options(&transport),
                }),
            )
            .map_err(|e| credential_error("environment service principal", &e))?;
            sources.push(NamedCredential {
                description: format!("environment service principal (client id {client})"),
                credential,
            });
        }
        if env("AZURE_FEDERATED_TOKEN_FILE").is_some() {
            let mut options = WorkloadIdentityCredentialOptions::default();
            options.credential_options.client_options = client_options(&transport);
            let credential = WorkloadIdentityCredential::new(Some(options))
                .map_err(|e| credential_error("workload identity", &e))?;
            sources.push(NamedCredential {
                description: format!(
                    "workload identity (client id {})",
                    client_id.as_deref().unwrap_or("from AZURE_CLIENT_ID")
                ),
                credential,
            });
        }
        let assigned = client_id
            .as_ref()
            .map(|id| format!("user-assigned, client id {id}"))
            .unwrap_or_else(|| "system-assigned".to_owned());
        if let (Some(endpoint), Some(secret)) = (env("MSI_ENDPOINT"), env("MSI_SECRET")) {
            sources.push(NamedCredential {
                description: format!("Azure ML compute managed identity ({assigned})"),
                credential: Arc::new(AzureMlManagedIdentityCredential::new(
                    &endpoint,
                    Secret::new(secret),
                    client_id.clone(),
                    transport.clone(),
                )?),
            });
        } else {
            let kind = if env("IDENTITY_ENDPOINT").is_some() {
                "managed identity via IDENTITY_ENDPOINT"
            } else {
                "managed identity via IMDS"
            };
            let official: Arc<dyn TokenCredential> =
                ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                    client_options: client_options(&transport),
                }))
                .map_err(|e| credential_error("managed identity", &e))?;
            let credential: Arc<dyn TokenCredential> = if env("IDENTITY_ENDPOINT").is_some() {
                official
            } else {
                Arc::new(ImdsProbedCredential::new(official))
            };
            sources.push(NamedCredential {
                description: format!("{kind} ({assigned})"),
                credential,
            });
        }
        let cli = AzureCliCredential::new(None).map_err(|e| credential_error("Azure CLI", &e))?;
        sources.push(NamedCredential {
            description: "Azure CLI login".to_owned(),
            credential: cli,
        });
        Ok(Self {
            sources,
            chosen: OnceLock::new(),
        })
    }

    /// The sources, in the order they are tried.
    pub fn sources(&self) -> &[NamedCredential] {
        &self.sources
    }

    /// The description of the source that produced a token, once one has.
    pub fn chosen(&self) -> Option<&str> {
        self.chosen
            .get()
            .and_then(|i| self.sources.get(*i))
            .map(|s| s.description.as_str())
    }

    /// What this chain is, for error messages.
    pub fn describe(&self) -> String {
        match self.chosen() {
            Some(chosen) => chosen.to_owned(),
            None => format!(
                "DefaultAzureCredential ({})",
                self.sources
                    .iter()
                    .map(|s| s.description.as_str())
                    .collect::<Vec<_>>()
                    .join(", then ")
            ),
        }
    }
}

fn credential_error(source: &str, error: &AzureError) -> Error {
    Error::AzureCredential {
        message: format!("{source}: {error}"),
    }
}

#[async_trait::async_trait]
impl TokenCredential for DefaultCredentialChain {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        if let Some(index) = self.chosen.get() {
            if let Some(source) = self.sources.get(*index) {
                return source.credential.get_token(scopes, options).await;
            }
        }
        let mut failures = Vec::new();
        for (index, source) in self.sources.iter().enumerate() {
            match source.credential.get_token(scopes, options.clone()).await {
                Ok(token) => {
                    let _ = self.chosen.set(index);
                    return Ok(token);
                }
                Err(error) => failures.push(format!("{}: {error}", source.description)),
            }
        }
        Err(AzureError::with_message(
            AzureErrorKind::Credential,
            format!(
                "no credential source produced a token; tried {}",
                failures.join("; ")
            ),
        ))
    }
}

/// The address the official IMDS credential calls (fixed by the platform: every Azure VM and
/// AML compute cluster node answers there).
const IMDS_SOCKET_ADDRESS: ([u8; 4], u16) = ([169, 254, 169, 254], 80);

/// How long the reachability probe waits for IMDS to accept a connection. On Azure it answers
/// in milliseconds; off Azure the address leads nowhere and would otherwise cost the official
/// credential's full retry budget (up to 72 s) before the chain reaches the Azure CLI.
const IMDS_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// The IMDS managed identity behind a one-time reachability probe, as the Python
/// `DefaultAzureCredential` does: when nothing accepts a connection at the IMDS address within
/// [`IMDS_PROBE_TIMEOUT`], the source reports itself unavailable at once (and for the rest of
/// its life) so the chain moves on; once IMDS is reachable, the official credential's own
/// retry guidance applies unchanged.
#[derive(Debug)]
struct ImdsProbedCredential {
    official: Arc<dyn TokenCredential>,
    reachable: OnceLock<bool>,
}

impl ImdsProbedCredential {
    fn new(official: Arc<dyn TokenCredential>) -> Self {
        Self {
            official,
            reachable: OnceLock::new(),
        }
    }

    fn probe() -> bool {
        let (ip, port) = IMDS_SOCKET_ADDRESS;
        let address = std::net::SocketAddr::from((ip, port));
        std::net::TcpStream::connect_timeout(&address, IMDS_PROBE_TIMEOUT).is_ok()
    }
}

#[async_trait::async_trait]
impl TokenCredential for ImdsProbedCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let reachable = match self.reachable.get() {
            Some(known) => *known,
            None => {
                // A blocking connect of at most IMDS_PROBE_TIMEOUT, once per chain.
                let probed = tokio::task::spawn_blocking(Self::probe)
                    .await
                    .unwrap_or(false);
                *self.reachable.get_or_init(|| probed)
            }
        };
        if !reachable {
            return Err(AzureError::with_message(
                AzureErrorKind::Credential,
                "the Instance Metadata Service (169.254.169.254) is not reachable: not on an \
                 Azure VM or compute cluster",
            ));
        }
        self.official.get_token(scopes, options).await
    }
}

/// Managed identity on Azure ML compute instances: `GET $MSI_ENDPOINT?api-version=2017-09-01
/// &resource=...[&clientid=...]` with header `secret: $MSI_SECRET` (the protocol the Python
/// `azure-identity` `AzureMLCredential` speaks), sent through an azure_core pipeline.
#[derive(Debug)]
pub struct AzureMlManagedIdentityCredential {
    endpoint: Url,
    secret: Secret,
    client_id: Option<String>,
    pipeline: Pipeline,
}

impl AzureMlManagedIdentityCredential {
    /// A credential for the endpoint and secret the compute instance publishes.
    pub fn new(
        endpoint: &str,
        secret: Secret,
        client_id: Option<String>,
        transport: Option<Transport>,
    ) -> Result<Self> {
        let endpoint = Url::parse(endpoint).map_err(|e| Error::AzureCredential {
            message: format!("MSI_ENDPOINT '{endpoint}' is not a URL: {e}"),
        })?;
        let options = ClientOptions {
            transport,
            retry: RetryOptions::default(),
            ..Default::default()
        };
        Ok(Self {
            endpoint,
            secret,
            client_id,
            pipeline: Pipeline::new(
                Some("amlguard"),
                Some(env!("CARGO_PKG_VERSION")),
                options,
                Vec::new(),
                Vec::new(),
                None,
            ),
        })
    }
}

#[derive(serde::Deserialize)]
struct MsiTokenResponse {
    access_token: String,
    #[serde(deserialize_with = "number_or_string")]
    expires_on: i64,
}

fn number_or_string<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<i64, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Either {
        Number(i64),
        Text(String),
    }
    match Either::deserialize(deserializer)? {
        Either::Number(n) => Ok(n),
        Either::Text(text) => text.parse().map_err(serde::de::Error::custom),
    }
}

use serde::Deserialize as _;

#[async_trait::async_trait]
impl TokenCredential for AzureMlManagedIdentityCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let [scope] = scopes else {
            return Err(AzureError::with_message(
                AzureErrorKind::Credential,
                "the Azure ML managed identity takes exactly one scope",
            ));
        };
        let resource = scope.strip_suffix("/.default").unwrap_or(scope);
        let mut url = self.endpoint.clone();
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("api-version", "2017-09-01");
            query.append_pair("resource", resource);
            if let Some(client_id) = &self.client_id {
                query.append_pair("clientid", client_id);
            }
        }
        let mut request = Request::new(url, Method::Get);
        request.insert_header("secret", self.secret.secret().to_owned());
        request.insert_header("metadata", "true");
        let response = self
            .pipeline
            .send(&Context::new(), &mut request, None)
            .await?;
        let body: MsiTokenResponse =
            serde_json::from_slice(response.body().as_ref()).map_err(|e| {
                AzureError::with_message(
                    AzureErrorKind::Credential,
                    format!("the Azure ML identity endpoint answered with an unexpected body: {e}"),
                )
            })?;
        let expires_on = OffsetDateTime::from_unix_timestamp(body.expires_on).map_err(|e| {
            AzureError::with_message(
                AzureErrorKind::Credential,
                format!("bad expires_on from the Azure ML identity endpoint: {e}"),
            )
        })?;
        Ok(AccessToken::new(body.access_token, expires_on))
    }
}

/// How long before expiry a cached token is replaced (the pipeline's bearer policy uses the
/// same margin); exposed so bridges to other token sources can use it too.
pub const TOKEN_REFRESH_MARGIN: AzureDuration = AzureDuration::minutes(5);
