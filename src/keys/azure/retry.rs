//! Retries for Key Vault calls: bounded exponential backoff with full jitter that honours
//! `Retry-After` (capped), for 408, 429, 5xx and transport errors (timeouts, resets).
//!
//! azure_core's own exponential policy waits `max(Retry-After, backoff)` with no upper bound, so a
//! server answering `Retry-After: 3600` would park a training job for an hour. This policy plugs
//! into the same pipeline slot (`RetryOptions::custom`) and caps every wait at `max_delay`, the
//! attempts at `max_retries` and the whole call at `max_total`. 401/403/404 are never retried
//! (they are answered by the bearer-challenge policy or become typed errors).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use azure_core::http::headers::{HeaderName, RETRY_AFTER};
use azure_core::http::policies::{RetryHeaders, RetryPolicy};
use azure_core::http::StatusCode;
use azure_core::time::Duration as AzureDuration;

/// Limits of the retry policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryLimits {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Backoff before the first retry; doubles on each retry (before jitter).
    pub initial_delay: Duration,
    /// Upper bound of any single wait, `Retry-After` included.
    pub max_delay: Duration,
    /// Upper bound of the time spent on one call, waits included.
    pub max_total: Duration,
}

impl Default for RetryLimits {
    fn default() -> Self {
        Self {
            max_retries: 8,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            max_total: Duration::from_secs(120),
        }
    }
}

const RETRY_STATUS_CODES: &[StatusCode] = &[
    StatusCode::RequestTimeout,
    StatusCode::TooManyRequests,
    StatusCode::InternalServerError,
    StatusCode::BadGateway,
    StatusCode::ServiceUnavailable,
    StatusCode::GatewayTimeout,
];

/// Counters a caller can read to see what the retries cost.
#[derive(Debug, Default)]
pub struct RetryStats {
    retries: AtomicU64,
    waited_ms: AtomicU64,
}

impl RetryStats {
    /// Retries made so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
    /// Total time slept between attempts.
    pub fn waited(&self) -> Duration {
        Duration::from_millis(self.waited_ms.load(Ordering::Relaxed))
    }
}

#[derive(Debug)]
pub(crate) struct BoundedRetryPolicy {
    limits: RetryLimits,
    headers: RetryHeaders,
    stats: Arc<RetryStats>,
}

impl BoundedRetryPolicy {
    pub(crate) fn new(limits: RetryLimits, stats: Arc<RetryStats>) -> Self {
        Self {
            limits,
            headers: RetryHeaders {
                retry_headers: vec![
                    HeaderName::from_static("retry-after-ms"),
                    HeaderName::from_static("x-ms-retry-after-ms"),
                    RETRY_AFTER,
                ],
            },
            stats,
        }
    }

    /// Full jitter: uniform in [backoff/2, backoff], backoff = initial x 2^(retry-1), capped.
    fn backoff(&self, retry_count: u32) -> Duration {
        let exponent = retry_count.saturating_sub(1).min(20);
        let backoff = self
            .limits
            .initial_delay
            .saturating_mul(1u32 << exponent)
            .min(self.limits.max_delay);
        let mut random = [0u8; 2];
        let fraction = match getrandom::getrandom(&mut random) {
            Ok(()) => f64::from(u16::from_le_bytes(random)) / f64::from(u16::MAX),
            Err(_) => 1.0,
        };
        backoff.mul_f64(0.5 + 0.5 * fraction)
    }
}

fn to_azure(duration: Duration) -> AzureDuration {
    AzureDuration::milliseconds(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
}

#[async_trait::async_trait]
impl RetryPolicy for BoundedRetryPolicy {
    fn is_expired(&self, duration_since_start: AzureDuration, retry_count: u32) -> bool {
        retry_count >= self.limits.max_retries
            || duration_since_start >= to_azure(self.limits.max_total)
    }

    fn retry_headers(&self) -> Option<&RetryHeaders> {
        Some(&self.headers)
    }

    fn retry_status_codes(&self) -> &[StatusCode] {
        RETRY_STATUS_CODES
    }

    fn sleep_duration(&self, retry_count: u32) -> AzureDuration {
        to_azure(self.backoff(retry_count))
    }

    async fn wait(&self, retry_count: u32, retry_after: Option<AzureDuration>) {
        let backoff = self.backoff(retry_count);
        let server_asked = retry_after
            .and_then(|d| u64::try_from(d.whole_milliseconds()).ok())
            .map(Duration::from_millis)
            .unwrap_or_default();
        // Honour the server's Retry-After, but never beyond our own bound.
        let wait = backoff.max(server_asked).min(self.limits.max_delay);
        self.stats.retries.fetch_add(1, Ordering::Relaxed);
        self.stats.waited_ms.fetch_add(
            u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let policy = BoundedRetryPolicy::new(
            RetryLimits {
                max_retries: 10,
                initial_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(1),
                max_total: Duration::from_secs(10),
            },
            Arc::default(),
        );
        for retry in 1..=10u32 {
            let full = Duration::from_millis(100)
                .saturating_mul(1 << (retry - 1))
                .min(Duration::from_secs(1));
            let wait = policy.backoff(retry);
            assert!(wait >= full / 2 && wait <= full, "retry {retry}: {wait:?}");
        }
        assert!(policy.is_expired(AzureDuration::seconds(0), 10));
        assert!(policy.is_expired(AzureDuration::seconds(10), 1));
        assert!(!policy.is_expired(AzureDuration::seconds(1), 1));
    }
}
