//! What Prometheus scrapes at `server.metrics_bind`: counters and histograms recorded where
//! things happen, and gauges read from the database at each scrape.
//!
//! Every label is one of a fixed set (an enum here, a route pattern, a status code, a reason
//! code of the error pages): never a token, code, state, `ref` or bot id, so no series can
//! carry a secret and their number stays bounded whatever clients send.

use std::time::Duration;

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::domain::ConnectionStatus;

/// How a flow ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum FlowOutcome {
    Connected,
    Denied,
    Refused,
}

/// Which part of Notion's API a proxied call went to: the first segment of its path, from a
/// fixed list (anything else is `other`), so the label stays bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ApiFamily {
    Pages,
    Databases,
    DataSources,
    Blocks,
    Search,
    Users,
    Comments,
    FileUploads,
    Views,
    Other,
}

impl ApiFamily {
    pub(crate) fn of(first_segment: &str) -> Self {
        match first_segment {
            "pages" => Self::Pages,
            "databases" => Self::Databases,
            "data_sources" => Self::DataSources,
            "blocks" => Self::Blocks,
            "search" => Self::Search,
            "users" => Self::Users,
            "comments" => Self::Comments,
            "file_uploads" => Self::FileUploads,
            "views" => Self::Views,
            _ => Self::Other,
        }
    }
}

/// Why a proxied call was sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ProxyRetry {
    /// Notion refused the token; it was refreshed.
    Unauthorized,
    /// Notion answered 429 or 529 with a `Retry-After` that fit the budget.
    RateLimited,
    /// The request provably did not reach Notion (the connection was refused).
    NotSent,
}

/// What came of an ACME order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum AcmeOutcome {
    Issued,
    Failed,
}

/// A call to one of Notion's OAuth endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum NotionEndpoint {
    Token,
    Refresh,
    Introspect,
    Revoke,
    /// `/v1/search`, to list what a user shared on the success page.
    Search,
}

/// What came of a call to Notion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum NotionOutcome {
    /// A success.
    Ok,
    /// Notion refused it (4xx other than 429): a used code, a dead token, wrong credentials.
    Refused,
    /// Notion asked to slow down or failed (429, 5xx).
    Unavailable,
    /// No answer in time.
    Timeout,
    /// Notion could not be reached.
    Unreachable,
    /// An answer that could not be understood.
    Garbled,
}

impl NotionOutcome {
    pub(crate) fn of<T>(result: &Result<T, notion_oauth::NotionError>) -> Self {
        use notion_oauth::NotionError as E;
        match result {
            Ok(_) => Self::Ok,
            Err(E::Api(api)) if api.status == 429 || api.status >= 500 => Self::Unavailable,
            Err(E::Api(_)) => Self::Refused,
            Err(E::UnexpectedStatus { status, .. }) if *status < 500 && *status != 429 => {
                Self::Refused
            }
            Err(E::UnexpectedStatus { .. }) => Self::Unavailable,
            Err(E::Timeout(_)) => Self::Timeout,
            Err(E::Network(_)) => Self::Unreachable,
            Err(E::InvalidResponse { .. }) => Self::Garbled,
        }
    }
}

/// What came of one delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum AttemptOutcome {
    Delivered,
    /// Failed; it will be tried again.
    Failed,
    /// Failed for the last time.
    Dead,
}

/// Label values as the words Prometheus users write (`connected`, not `Connected`).
macro_rules! label_words {
    ($($type:ident { $($variant:ident => $word:literal),+ $(,)? })+) => {$(
        impl EncodeLabelValue for $type {
            fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
                encoder.write_str(match self { $(Self::$variant => $word),+ })
            }
        }
    )+};
}

label_words! {
    FlowOutcome { Connected => "connected", Denied => "denied", Refused => "refused" }
    AcmeOutcome { Issued => "issued", Failed => "failed" }
    NotionEndpoint {
        Token => "token",
        Refresh => "refresh",
        Introspect => "introspect",
        Revoke => "revoke",
        Search => "search",
    }
    NotionOutcome {
        Ok => "ok",
        Refused => "refused",
        Unavailable => "unavailable",
        Timeout => "timeout",
        Unreachable => "unreachable",
        Garbled => "garbled",
    }
    AttemptOutcome { Delivered => "delivered", Failed => "failed", Dead => "dead" }
    ApiFamily {
        Pages => "pages",
        Databases => "databases",
        DataSources => "data_sources",
        Blocks => "blocks",
        Search => "search",
        Users => "users",
        Comments => "comments",
        FileUploads => "file_uploads",
        Views => "views",
        Other => "other",
    }
    ProxyRetry { Unauthorized => "unauthorized", RateLimited => "rate_limited", NotSent => "not_sent" }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ProxyCall {
    family: ApiFamily,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ProxyRetried {
    reason: ProxyRetry,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Flow {
    outcome: FlowOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AcmeOrder {
    result: AcmeOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Attempt {
    outcome: AttemptOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct NotionCall {
    endpoint: NotionEndpoint,
    outcome: NotionOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Endpoint {
    endpoint: NotionEndpoint,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HttpRequest {
    route: String,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Route {
    route: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Status {
    status: &'static str,
}

fn latency_buckets() -> Histogram {
    // 1 ms to about 16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// Every series this server exposes.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    flows_started: Counter,
    flows_finished: Family<Flow, Counter>,
    flows_refused: Family<Reason, Counter>,
    notion_requests: Family<NotionCall, Counter>,
    notion_latency: Family<Endpoint, Histogram, fn() -> Histogram>,
    delivery_attempts: Family<Attempt, Counter>,
    http_requests: Family<HttpRequest, Counter>,
    http_latency: Family<Route, Histogram, fn() -> Histogram>,
    connections: Family<Status, Gauge>,
    outbox_pending: Gauge,
    outbox_oldest_age: Gauge,
    certificate_expiry: Gauge,
    acme_orders: Family<AcmeOrder, Counter>,
    acme_next_renewal: Gauge,
    proxy_requests: Family<ProxyCall, Counter>,
    proxy_retries: Family<ProxyRetried, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("noh");
        let metrics = Self {
            flows_started: Counter::default(),
            flows_finished: Family::default(),
            flows_refused: Family::default(),
            notion_requests: Family::default(),
            notion_latency: Family::new_with_constructor(latency_buckets),
            delivery_attempts: Family::default(),
            http_requests: Family::default(),
            http_latency: Family::new_with_constructor(latency_buckets),
            connections: Family::default(),
            outbox_pending: Gauge::default(),
            outbox_oldest_age: Gauge::default(),
            certificate_expiry: Gauge::default(),
            acme_orders: Family::default(),
            acme_next_renewal: Gauge::default(),
            proxy_requests: Family::default(),
            proxy_retries: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "flows_started",
            "Flows started at /connect",
            metrics.flows_started.clone(),
        );
        registry.register(
            "flows_finished",
            "Flows that came back to /callback, by outcome (refused: a callback whose page is an error)",
            metrics.flows_finished.clone(),
        );
        registry.register(
            "flows_refused",
            "Requests to /connect or /callback refused, by the reason code their page shows",
            metrics.flows_refused.clone(),
        );
        registry.register(
            "notion_requests",
            "Calls to Notion's OAuth endpoints, by endpoint and outcome",
            metrics.notion_requests.clone(),
        );
        registry.register(
            "notion_request_duration_seconds",
            "How long calls to Notion took",
            metrics.notion_latency.clone(),
        );
        registry.register(
            "delivery_attempts",
            "Attempts to deliver an event to a webhook, command or hook, by outcome",
            metrics.delivery_attempts.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests answered, by route pattern and status",
            metrics.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "How long answering took, by route pattern",
            metrics.http_latency.clone(),
        );
        registry.register(
            "connections",
            "Stored connections, by status (read at each scrape)",
            metrics.connections.clone(),
        );
        registry.register(
            "outbox_pending",
            "Deliveries waiting to be made (read at each scrape)",
            metrics.outbox_pending.clone(),
        );
        registry.register(
            "outbox_oldest_pending_age_seconds",
            "Age of the oldest delivery waiting, 0 when none (read at each scrape)",
            metrics.outbox_oldest_age.clone(),
        );
        registry.register(
            "tls_certificate_expiry_timestamp_seconds",
            "When the certificate served expires (seconds since the Unix epoch; 0 without [tls])",
            metrics.certificate_expiry.clone(),
        );
        registry.register(
            "acme_orders",
            "Certificates ordered from the ACME authority, by result",
            metrics.acme_orders.clone(),
        );
        registry.register(
            "notion_proxy_requests",
            "Calls through the Notion API proxy, by API family and the status answered (after retries; 0 when Notion was not reached)",
            metrics.proxy_requests.clone(),
        );
        registry.register(
            "notion_proxy_retries",
            "Proxied calls sent to Notion again, by reason",
            metrics.proxy_retries.clone(),
        );
        registry.register(
            "acme_next_renewal_timestamp_seconds",
            "When the certificate is due for renewal (seconds since the Unix epoch; 0 without [acme])",
            metrics.acme_next_renewal.clone(),
        );
        Self { registry, ..metrics }
    }

    pub(crate) fn flow_started(&self) {
        self.flows_started.inc();
    }

    pub(crate) fn flow_finished(&self, outcome: FlowOutcome) {
        self.flows_finished.get_or_create(&Flow { outcome }).inc();
    }

    /// A refused request to `/connect` or `/callback`, by its page's reason code. A refused
    /// callback is also a finished flow: its route counts that.
    pub(crate) fn flow_refused(&self, reason: &'static str) {
        self.flows_refused.get_or_create(&Reason { reason }).inc();
    }

    pub(crate) fn notion_call(
        &self,
        endpoint: NotionEndpoint,
        outcome: NotionOutcome,
        took: Duration,
    ) {
        self.notion_requests.get_or_create(&NotionCall { endpoint, outcome }).inc();
        self.notion_latency.get_or_create(&Endpoint { endpoint }).observe(took.as_secs_f64());
    }

    pub(crate) fn delivery_attempt(&self, outcome: AttemptOutcome) {
        self.delivery_attempts.get_or_create(&Attempt { outcome }).inc();
    }

    /// An answer to `route` (a pattern such as `/api/v1/connections/{bot_id}`).
    pub(crate) fn http_request(&self, route: &str, status: u16, took: Duration) {
        let route = route.to_owned();
        self.http_latency
            .get_or_create(&Route { route: route.clone() })
            .observe(took.as_secs_f64());
        self.http_requests.get_or_create(&HttpRequest { route, status }).inc();
    }

    /// A proxied call answered with `status` (0: Notion was not reached).
    pub(crate) fn proxy_call(&self, family: ApiFamily, status: u16) {
        self.proxy_requests.get_or_create(&ProxyCall { family, status }).inc();
    }

    pub(crate) fn proxy_retry(&self, reason: ProxyRetry) {
        self.proxy_retries.get_or_create(&ProxyRetried { reason }).inc();
    }

    pub(crate) fn acme_order(&self, outcome: AcmeOutcome) {
        self.acme_orders.get_or_create(&AcmeOrder { result: outcome }).inc();
    }

    /// The certificate is due for renewal at `unix` seconds.
    pub(crate) fn acme_next_renewal_at(&self, unix: i64) {
        self.acme_next_renewal.set(unix);
    }

    /// The certificate now served expires at `unix` seconds.
    pub(crate) fn certificate_expires_at(&self, unix: i64) {
        self.certificate_expiry.set(unix);
    }

    /// The gauges read from the database, set just before a scrape is answered.
    pub(crate) fn set_state(
        &self,
        connections: &[(ConnectionStatus, i64)],
        pending: i64,
        oldest_pending_age: Duration,
    ) {
        for &status in ConnectionStatus::ALL {
            let count = connections.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n);
            self.connections.get_or_create(&Status { status: status.as_str() }).set(count);
        }
        self.outbox_pending.set(pending);
        self.outbox_oldest_age.set(i64::try_from(oldest_pending_age.as_secs()).unwrap_or(i64::MAX));
    }

    /// The Prometheus text exposition of every series.
    pub(crate) fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
