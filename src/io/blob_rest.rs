//! Blob REST requests that `object_store` does not make (append blobs, conditional deletes),
//! signed by `object_store`'s own Azure credential and authorizer, so that account keys, SAS
//! tokens, bearer tokens and managed / workload identities work exactly as they do for
//! [`super::blob`]. Nothing here signs by itself.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::azure::{AzureAuthorizer, AzureCredential};
use object_store::client::HttpRequestBody;
use object_store::CredentialProvider;

use super::blob::{blob_endpoint, StorageOptions};
use crate::error::{Error, Result};
use crate::parallel::block_on;

/// Service version sent with every request (append position conditions need 2015-02-21+).
const SERVICE_VERSION: &str = "2021-12-02";

/// A credential source for one storage account.
pub(crate) type AzureCredentials = Arc<dyn CredentialProvider<Credential = AzureCredential>>;

/// One blob addressed through the Blob REST API.
pub(crate) struct RestBlob {
    url: String,
    endpoint: url::Url,
    account: String,
    credentials: AzureCredentials,
    client: reqwest::Client,
}

/// The typed error for a request the service answered with a refusal.
pub(crate) fn http_error(action: &'static str, url: &str, answer: &Answer) -> Error {
    use std::io::ErrorKind;
    let kind = match answer.status {
        404 => ErrorKind::NotFound,
        401 | 403 => ErrorKind::PermissionDenied,
        _ => ErrorKind::Other,
    };
    // The service's <Message> says what is wrong; it holds no secrets (never a key or token).
    let body = String::from_utf8_lossy(&answer.body);
    let detail = body
        .split_once("<Message>")
        .and_then(|(_, rest)| rest.split_once("</Message>"))
        .map(|(message, _)| message.lines().next().unwrap_or_default().trim().to_owned())
        .unwrap_or_default();
    let mut message = format!(
        "the storage service answered HTTP {} {}",
        answer.status, answer.code
    );
    if !detail.is_empty() {
        message.push_str(": ");
        message.push_str(&detail);
    }
    Error::io(
        action,
        PathBuf::from(url),
        std::io::Error::new(kind, message),
    )
}

/// The typed error for a request that got no answer.
pub(crate) fn transport_error(
    action: &'static str,
    url: &str,
    error: impl std::fmt::Display,
) -> Error {
    Error::io(
        action,
        PathBuf::from(url),
        std::io::Error::other(error.to_string()),
    )
}

/// The status and `x-ms-error-code` of a response, and its body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) code: String,
    pub(crate) body: Vec<u8>,
}

impl RestBlob {
    /// Address the blob at `url`. Makes no request.
    pub(crate) fn open(url: &str, options: &StorageOptions) -> Result<Self> {
        let target = blob_endpoint(url, options)?;
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| transport_error("connecting to", url, e))?;
        Ok(Self {
            url: url.to_owned(),
            endpoint: target.blob_url,
            account: target.account,
            credentials: target.credentials,
            client,
        })
    }

    /// The URL this blob was named by.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    async fn send(
        &self,
        action: &'static str,
        method: http::Method,
        query: Option<&str>,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> Result<Answer> {
        let mut uri = self.endpoint.clone();
        uri.set_query(query);
        let mut builder = http::Request::builder()
            .method(method.clone())
            .uri(uri.as_str())
            .header("x-ms-version", SERVICE_VERSION);
        // The service wants Content-Length on every PUT (0 included), and Shared Key signs it,
        // so it is set here rather than left to the HTTP client (which omits it when empty).
        if method == http::Method::PUT {
            builder = builder.header(http::header::CONTENT_LENGTH, body.len().to_string());
        }
        for (name, value) in headers {
            builder = builder.header(*name, value.as_str());
        }
        let mut request: http::Request<HttpRequestBody> = builder
            .body(HttpRequestBody::from(Vec::new()))
            .map_err(|e| transport_error(action, &self.url, e))?;
        let credential = self
            .credentials
            .get_credential()
            .await
            .map_err(|e| super::blob::storage_error(action, &self.url, e))?;
        AzureAuthorizer::new(&credential, &self.account)
            .try_authorize(&mut request)
            .map_err(|e| super::blob::storage_error(action, &self.url, e))?;
        let (parts, _) = request.into_parts();
        let request = reqwest::Request::try_from(http::Request::from_parts(parts, body))
            .map_err(|e| transport_error(action, &self.url, e))?;
        let response = self
            .client
            .execute(request)
            .await
            .map_err(|e| transport_error(action, &self.url, e))?;
        let status = response.status().as_u16();
        let code = response
            .headers()
            .get("x-ms-error-code")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response
            .bytes()
            .await
            .map_err(|e| transport_error(action, &self.url, e))?
            .to_vec();
        Ok(Answer { status, code, body })
    }

    /// Send one signed request and wait for its answer.
    pub(crate) fn call(
        &self,
        action: &'static str,
        method: http::Method,
        query: Option<&str>,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> Result<Answer> {
        block_on(self.send(action, method, query, headers, body))?
    }
}
