//! Telling clients apart, and holding each to its rate on the endpoints anyone can reach.
//!
//! A client is its address as the server sees it, or, when the request comes from a trusted
//! proxy, the address that proxy names in the forwarded header: anyone else can write that
//! header, so it is only believed from `server.trusted_proxies`. IPv6 clients are told apart by
//! their /64 network, because one host is routinely given a whole /64 and could otherwise take a
//! fresh address for every request.
//!
//! The limiter is governor's (GCRA: a steady rate with a burst on top, no timer per client).
//! Failed API keys are counted only when they fail; once a client is past its limit, every API
//! request from it is refused before its key is looked at, or guessing would go on at full speed
//! with 429 for a wrong key and 200 for the right one.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

use crate::config::{ClientPolicy, ForwardedHeader, Rate};

/// A client as rate limits see it: an IPv4 address, or an IPv6 /64 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Client(IpAddr);

impl Client {
    /// The client an address belongs to.
    pub(crate) fn of(address: IpAddr) -> Self {
        match address.to_canonical() {
            IpAddr::V6(v6) => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                Self(IpAddr::V6(Ipv6Addr::from(network)))
            }
            v4 => Self(v4),
        }
    }
}

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V6(network) => write!(f, "{network}/64"),
            v4 => v4.fmt(f),
        }
    }
}

/// A request refused for its client's rate: when it may come back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limited {
    /// Whole seconds, at least one, for `Retry-After`.
    pub(crate) retry_after_seconds: u64,
}

impl Limited {
    fn after(wait: Duration) -> Self {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Self { retry_after_seconds: seconds.max(1) }
    }
}

/// Which limit a request ran into, for the log.
#[derive(Debug, Clone, Copy)]
enum Limit {
    FlowRequests,
    FailedApiKeys,
}

impl Limit {
    fn setting(self) -> &'static str {
        match self {
            Self::FlowRequests => "rate_limit.flow_requests_per_minute",
            Self::FailedApiKeys => "rate_limit.failed_api_keys_per_minute",
        }
    }
}

/// Known clients are forgotten once their limit has nothing left to remember, checked every
/// this many requests: memory follows the clients of the last minute, not all time.
const FORGET_EVERY: u64 = 4096;

/// The limits every client is held to.
pub(crate) struct RateLimits {
    trusted_proxies: Vec<IpNet>,
    forwarded_header: ForwardedHeader,
    flow_requests: Option<DefaultKeyedRateLimiter<Client>>,
    failed_api_keys: Option<DefaultKeyedRateLimiter<Client>>,
    /// Clients past their failed-key limit, and until when.
    shut_out: Mutex<HashMap<Client, Instant>>,
    checks: AtomicU64,
    refused: AtomicU64,
    /// Whether the log has said that an untrusted peer sent a forwarded header.
    hinted: AtomicBool,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("trusted_proxies", &self.trusted_proxies)
            .finish_non_exhaustive()
    }
}

fn limiter(rate: Option<Rate>) -> Option<DefaultKeyedRateLimiter<Client>> {
    rate.map(|rate| RateLimiter::keyed(Quota::per_minute(rate.per_minute).allow_burst(rate.burst)))
}

impl RateLimits {
    pub(crate) fn new(policy: &ClientPolicy) -> Self {
        Self {
            trusted_proxies: policy.trusted_proxies.clone(),
            forwarded_header: policy.forwarded_header,
            flow_requests: limiter(policy.flow_requests),
            failed_api_keys: limiter(policy.failed_api_keys),
            shut_out: Mutex::new(HashMap::new()),
            checks: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            hinted: AtomicBool::new(false),
        }
    }

    /// Counts a request to `/connect` or `/callback` against its client.
    ///
    /// # Errors
    /// The client is past `rate_limit.flow_requests_per_minute`.
    pub(crate) fn flow_request(&self, request: &Parts) -> Result<(), Limited> {
        let Some(limiter) = &self.flow_requests else { return Ok(()) };
        let Some(client) = self.client(request) else { return Ok(()) };
        self.tidy();
        limiter.check_key(&client).map_err(|not_until| {
            let wait = not_until.wait_time_from(limiter.clock().now());
            self.refuse(request, client, Limit::FlowRequests, wait)
        })
    }

    /// Whether the client of an API request may have its key looked at.
    ///
    /// # Errors
    /// It failed too many keys lately.
    pub(crate) fn api_request(&self, request: &Parts) -> Result<(), Limited> {
        if self.failed_api_keys.is_none() {
            return Ok(());
        }
        let Some(client) = self.client(request) else { return Ok(()) };
        let until = self.shut_out.lock().unwrap_or_else(|e| e.into_inner()).get(&client).copied();
        match until.map(|until| until.saturating_duration_since(Instant::now())) {
            Some(wait) if !wait.is_zero() => Err(Limited::after(wait)),
            _ => Ok(()),
        }
    }

    /// Counts a key that was not valid against its client.
    ///
    /// # Errors
    /// This failure took the client past `rate_limit.failed_api_keys_per_minute`.
    pub(crate) fn failed_api_key(&self, request: &Parts) -> Result<(), Limited> {
        let Some(limiter) = &self.failed_api_keys else { return Ok(()) };
        let Some(client) = self.client(request) else { return Ok(()) };
        self.tidy();
        limiter.check_key(&client).map_err(|not_until| {
            let wait = not_until.wait_time_from(limiter.clock().now());
            let limited = self.refuse(request, client, Limit::FailedApiKeys, wait);
            let until = Instant::now() + Duration::from_secs(limited.retry_after_seconds);
            self.shut_out.lock().unwrap_or_else(|e| e.into_inner()).insert(client, until);
            limited
        })
    }

    /// The client `request` comes from; `None` when the server was not told the peer's address
    /// (an embedding app that serves without `ConnectInfo`).
    fn client(&self, request: &Parts) -> Option<Client> {
        let peer = request.extensions.get::<ConnectInfo<SocketAddr>>()?.0.ip();
        if !self.is_trusted(peer) {
            return Some(Client::of(peer));
        }
        let values = request.headers.get_all(self.forwarded_header.name());
        // Split as bytes: a line with one byte that is not text must not vanish whole, or a
        // client could erase the address its proxy appended to that very line. An element that
        // is not text is unreadable, and the walk stops there.
        let hops = values.iter().flat_map(|value| value.as_bytes().split(|byte| *byte == b','));
        let named = hops.map(|hop| {
            let hop = std::str::from_utf8(hop).ok()?;
            match self.forwarded_header {
                ForwardedHeader::XForwardedFor => address(hop),
                ForwardedHeader::Forwarded => forwarded_for(hop),
            }
        });
        let named: Vec<Option<IpAddr>> = named.collect();
        Some(Client::of(nearest_untrusted(peer, &named, |address| self.is_trusted(address))))
    }

    fn is_trusted(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.trusted_proxies.iter().any(|network| network.contains(&address))
    }

    fn refuse(&self, request: &Parts, client: Client, limit: Limit, wait: Duration) -> Limited {
        let limited = Limited::after(wait);
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        // One line per power of two: a flood shows in the log without filling it.
        if refused.is_power_of_two() {
            tracing::warn!(%client, refused, limit = limit.setting(), "requests refused: a client went past its rate limit");
        }
        let untrusted_forward = request.headers.contains_key(self.forwarded_header.name())
            && request
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .is_some_and(|peer| !self.is_trusted(peer.0.ip()));
        if untrusted_forward && !self.hinted.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                peer = %client,
                header = self.forwarded_header.name(),
                "a peer that is not in server.trusted_proxies sent a forwarded header, which was ignored: if it is your proxy, every client behind it shares one rate limit; add it to server.trusted_proxies"
            );
        }
        limited
    }

    /// Forgets clients with nothing left to remember, now and then.
    fn tidy(&self) {
        if !self.checks.fetch_add(1, Ordering::Relaxed).is_multiple_of(FORGET_EVERY) {
            return;
        }
        for limiter in [&self.flow_requests, &self.failed_api_keys].into_iter().flatten() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        let now = Instant::now();
        let mut shut_out = self.shut_out.lock().unwrap_or_else(|e| e.into_inner());
        shut_out.retain(|_, until| *until > now);
        shut_out.shrink_to_fit();
    }
}

/// The client behind a chain of proxies: walking back from `peer` through the addresses each
/// hop named (`named`, oldest first), the first that is not a trusted proxy. A hop that does not
/// name an address stops the walk at the last address known, since what lies beyond it was
/// written by someone not trusted.
fn nearest_untrusted(
    peer: IpAddr,
    named: &[Option<IpAddr>],
    is_trusted: impl Fn(IpAddr) -> bool,
) -> IpAddr {
    let mut client = peer;
    for hop in named.iter().rev() {
        let Some(address) = *hop else { break };
        client = address;
        if !is_trusted(address) {
            break;
        }
    }
    client
}

/// One `Forwarded` element's `for=`: `for=192.0.2.1;proto=https`, `for="[2001:db8::1]:443"`.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim().eq_ignore_ascii_case("for").then(|| address(value))?
    })
}

/// An address as proxies write it: bare, quoted, bracketed, with or without a port.
fn address(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    text.parse().ok().or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn addresses_are_read_however_proxies_write_them() {
        assert_eq!(address(" 192.0.2.1 "), Some(ip("192.0.2.1")));
        assert_eq!(address("192.0.2.1:4711"), Some(ip("192.0.2.1")));
        assert_eq!(address("2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(address("\"[2001:db8::1]:4711\""), Some(ip("2001:db8::1")));
        assert_eq!(address("[2001:db8::1]"), Some(ip("2001:db8::1")));
        for junk in ["", "unknown", "_hidden", "[2001:db8::1", "example.com", "1.2.3.4.5"] {
            assert_eq!(address(junk), None, "{junk}");
        }
        assert_eq!(
            forwarded_for("for=192.0.2.60;proto=http;by=203.0.113.43"),
            Some(ip("192.0.2.60"))
        );
        assert_eq!(
            forwarded_for("proto=https;For=\"[2001:db8:cafe::17]:4711\""),
            Some(ip("2001:db8:cafe::17"))
        );
        assert_eq!(forwarded_for("by=203.0.113.43"), None);
        assert_eq!(forwarded_for("for=unknown"), None);
    }

    #[test]
    fn the_client_is_the_first_untrusted_hop_walking_back() {
        let trusted = |a: IpAddr| a.to_string().starts_with("10.");
        let peer = ip("10.0.0.1");
        let chain = |hops: &[&str]| hops.iter().map(|h| address(h)).collect::<Vec<_>>();
        // No header: the peer itself.
        assert_eq!(nearest_untrusted(peer, &[], trusted), peer);
        // A client that wrote its own header before the proxies appended theirs.
        let forged = chain(&["6.6.6.6", "203.0.113.9", "10.0.0.2"]);
        assert_eq!(nearest_untrusted(peer, &forged, trusted), ip("203.0.113.9"));
        // Garbage where a trusted proxy should have written: believe nothing beyond it.
        let garbled = chain(&["203.0.113.9", "junk", "10.0.0.2"]);
        assert_eq!(nearest_untrusted(peer, &garbled, trusted), ip("10.0.0.2"));
        // Only proxies: the farthest of them.
        let internal = chain(&["10.0.0.3", "10.0.0.2"]);
        assert_eq!(nearest_untrusted(peer, &internal, trusted), ip("10.0.0.3"));
    }

    #[test]
    fn a_line_with_bytes_that_are_not_text_keeps_the_address_the_proxy_appended() {
        use axum::http::HeaderValue;
        let policy = ClientPolicy {
            trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
            forwarded_header: ForwardedHeader::XForwardedFor,
            flow_requests: None,
            failed_api_keys: None,
        };
        let limits = RateLimits::new(&policy);
        let client_of = |value: &[u8]| {
            let mut request = axum::http::Request::new(());
            let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
            request.extensions_mut().insert(ConnectInfo(peer));
            request
                .headers_mut()
                .insert("x-forwarded-for", HeaderValue::from_bytes(value).unwrap());
            limits.client(&request.into_parts().0)
        };
        let appended = Some(Client::of(ip("203.0.113.9")));
        assert_eq!(client_of(b"\xff, 203.0.113.9"), appended);
        assert_eq!(client_of(b"6.6.6.6, 203.0.113.9"), appended);
        // Unreadable where the proxy wrote: nothing beyond it is believed.
        assert_eq!(client_of(b"203.0.113.9, \xff"), Some(Client::of(ip("127.0.0.1"))));
    }

    #[test]
    fn ipv6_clients_are_their_64_network() {
        let one = Client::of(ip("2001:db8:1:2:aaaa::1"));
        assert_eq!(one, Client::of(ip("2001:db8:1:2:ffff::9")));
        assert_ne!(one, Client::of(ip("2001:db8:1:3::1")));
        assert_eq!(one.to_string(), "2001:db8:1:2::/64");
        // An IPv4 peer on a dual-stack socket is the IPv4 client it is.
        assert_eq!(Client::of(ip("::ffff:192.0.2.1")), Client::of(ip("192.0.2.1")));
    }
}
