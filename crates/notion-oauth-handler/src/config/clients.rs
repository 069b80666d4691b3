//! Who a client is and how often it may come: `server.trusted_proxies`,
//! `server.forwarded_header` and `[rate_limit]`, checked.

use std::num::NonZeroU32;

use ipnet::IpNet;

use super::Problems;
use super::settings::{RateLimitSettings, ServerSettings};

/// How a request's client is told apart, and what each client may do.
#[derive(Debug, Clone)]
pub struct ClientPolicy {
    /// Peers whose forwarded header is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// The header trusted proxies name the client in.
    pub forwarded_header: ForwardedHeader,
    /// `/connect` and `/callback` requests; `None` is off.
    pub flow_requests: Option<Rate>,
    /// API requests with a key that is not valid; `None` is off.
    pub failed_api_keys: Option<Rate>,
}

/// The header a proxy appends the address it received a request from to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1` (nginx, most load balancers).
    XForwardedFor,
    /// RFC 7239's `Forwarded: for=client, for=proxy1`.
    Forwarded,
}

impl ForwardedHeader {
    /// The header's name, as `http` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
        }
    }
}

/// A steady rate with a burst allowed on top of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests a minute, once the burst is used up.
    pub per_minute: NonZeroU32,
    /// Requests that may come at once.
    pub burst: NonZeroU32,
}

pub(super) fn validate(
    server: &ServerSettings,
    limits: &RateLimitSettings,
    problems: &mut Problems,
) -> Option<ClientPolicy> {
    let trusted_proxies: Vec<Option<IpNet>> = server
        .trusted_proxies
        .iter()
        .enumerate()
        .map(|(index, text)| {
            problems.check(&format!("server.trusted_proxies[{index}]"), proxy(text))
        })
        .collect();
    let forwarded_header = match server.forwarded_header.trim().to_ascii_lowercase().as_str() {
        "x-forwarded-for" => Some(ForwardedHeader::XForwardedFor),
        "forwarded" => Some(ForwardedHeader::Forwarded),
        _ => {
            problems.add(
                "server.forwarded_header",
                format!(
                    "`{}` is not one this server reads: use X-Forwarded-For or Forwarded, whichever your proxy sets",
                    server.forwarded_header
                ),
            );
            None
        }
    };
    let flow_requests = rate(
        problems,
        "rate_limit.flow_requests_per_minute",
        limits.flow_requests_per_minute,
        "rate_limit.flow_burst",
        limits.flow_burst,
    );
    let failed_api_keys = rate(
        problems,
        "rate_limit.failed_api_keys_per_minute",
        limits.failed_api_keys_per_minute,
        "rate_limit.failed_api_key_burst",
        limits.failed_api_key_burst,
    );
    Some(ClientPolicy {
        trusted_proxies: trusted_proxies.into_iter().collect::<Option<_>>()?,
        forwarded_header: forwarded_header?,
        flow_requests: flow_requests?,
        failed_api_keys: failed_api_keys?,
    })
}

/// An address (`10.1.2.3`, `::1`) or a network (`10.0.0.0/8`).
fn proxy(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>().or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from)).map_err(
        |_| format!("`{text}` is not an address or a network such as 10.0.0.7, 10.0.0.0/8 or ::1"),
    )
}

/// `Some(None)` is a limit turned off, `None` a problem reported.
fn rate(
    problems: &mut Problems,
    rate_key: &str,
    per_minute: u32,
    burst_key: &str,
    burst: u32,
) -> Option<Option<Rate>> {
    let Some(per_minute) = NonZeroU32::new(per_minute) else {
        return Some(None);
    };
    let Some(burst) = NonZeroU32::new(burst) else {
        problems.add(burst_key, format!("must be at least 1 while {rate_key} is not 0 (off)"));
        return None;
    };
    Some(Some(Rate { per_minute, burst }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_are_addresses_or_networks() {
        assert_eq!(proxy("10.0.0.0/8").ok(), "10.0.0.0/8".parse().ok());
        assert_eq!(proxy(" 10.1.2.3 ").ok(), "10.1.2.3/32".parse().ok());
        assert_eq!(proxy("::1").ok(), "::1/128".parse().ok());
        for bad in ["", "10.0.0.0/33", "localhost", "10.0.0.1:80", "*"] {
            assert!(proxy(bad).is_err(), "{bad} was taken");
        }
    }
}
