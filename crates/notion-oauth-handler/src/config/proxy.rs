//! `[proxy]`, checked: the limits of the Notion API proxy.

use std::time::Duration;

use super::checks::in_range;
use super::problems::Problems;
use super::settings::ProxySettings;

/// The proxy's limits.
#[derive(Debug, Clone, Copy)]
pub struct ProxyPolicy {
    /// The largest request body passed on.
    pub max_request_bytes: usize,
    /// The largest answer passed back.
    pub max_response_bytes: usize,
    /// One call to Notion.
    pub timeout: Duration,
    /// What one proxied request may spend waiting for `Retry-After` and pacing.
    pub retry_budget: Duration,
    /// Pacing per connection, if any.
    pub pace: Option<Pace>,
}

/// Requests per connection: one every `interval`, `burst` at once.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Time between requests once the burst is spent.
    pub interval: Duration,
    /// Requests at once.
    pub burst: u32,
}

pub(super) fn validate(settings: &ProxySettings, problems: &mut Problems) -> Option<ProxyPolicy> {
    let request = problems.check(
        "proxy.max_request_bytes",
        in_range(settings.max_request_bytes, 1024..=64 * 1024 * 1024, "bytes"),
    );
    let response = problems.check(
        "proxy.max_response_bytes",
        in_range(settings.max_response_bytes, 64 * 1024..=1024 * 1024 * 1024, "bytes"),
    );
    let timeout = problems
        .check("proxy.timeout_seconds", in_range(settings.timeout_seconds, 1..=300, "seconds"));
    let budget = problems.check(
        "proxy.retry_budget_seconds",
        in_range(settings.retry_budget_seconds, 0..=300, "seconds"),
    );
    let rate = settings.requests_per_second;
    let pace = if rate == 0.0 {
        Some(None)
    } else if rate.is_finite() && (0.01..=1000.0).contains(&rate) {
        let burst = problems.check(
            "proxy.burst",
            in_range(u64::from(settings.burst), 1..=1000, "requests").map(|_| settings.burst),
        );
        burst.map(|burst| Some(Pace { interval: Duration::from_secs_f64(1.0 / rate), burst }))
    } else {
        problems.add(
            "proxy.requests_per_second",
            "must be 0 (no pacing) or between 0.01 and 1000 requests per second",
        );
        None
    };
    let as_usize = |bytes: u64| usize::try_from(bytes).unwrap_or(usize::MAX);
    Some(ProxyPolicy {
        max_request_bytes: as_usize(request?),
        max_response_bytes: as_usize(response?),
        timeout: Duration::from_secs(timeout?),
        retry_budget: Duration::from_secs(budget?),
        pace: pace?,
    })
}
