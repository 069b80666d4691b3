//! What request handlers reach: the services, each extracted on its own (axum `FromRef`
//! substates), so a handler names the one it uses and cannot reach the others.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use axum::http::{HeaderMap, HeaderValue, header};

use crate::config::Config;
use crate::flow::Flow;
use crate::lifecycle::Lifecycle;
use crate::links::Links;
use crate::metrics::Metrics;
use crate::pages::Pages;
use crate::proxy::NotionProxy;
use crate::rate_limits::RateLimits;
use crate::store::Store;

/// The cookie that ties a flow to the browser that started it. One per browser, not per flow,
/// so that several tabs can each run a flow at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BrowserCookie {
    /// Over https it carries the `__Host-` prefix, which browsers only accept from this exact
    /// host: a sibling subdomain cannot plant a value it knows.
    pub(crate) name: &'static str,
    /// The cookie that lets the browser that finished a flow see its success page again.
    pub(crate) finished_name: &'static str,
    pub(crate) secure: bool,
    /// The state's lifetime plus a margin: the cookie outlives every flow it can finish.
    pub(crate) max_age: Duration,
}

impl BrowserCookie {
    /// The cookie `name` (the binding or the proof) with `value`, as this server sets both:
    /// out of scripts' reach, sent on the top-level redirect back from Notion (Lax), for the
    /// whole host (`__Host-` cookies must have `Path=/`), for as long as a flow can finish.
    ///
    /// `None` for a value a header cannot carry; the server only sets values it made (URL-safe
    /// base64), so that is a bug, which the caller logs.
    ///
    /// Written out here rather than by the `cookie` crate's jar, which parsed and decoded every
    /// cookie the browser sent into a map and formatted through `Display`, for two cookies
    /// whose names and values this server chooses: `/connect` runs 5 % fewer instructions
    /// without it (docs/BENCHMARKS.md).
    ///
    /// Pieced together into one buffer of the final size rather than by `format!`, whose
    /// formatting machinery and growing buffer were 3 % of `/connect`'s instructions (callgrind).
    pub(crate) fn set(&self, name: &str, value: &str) -> Option<HeaderValue> {
        const HTTP_ONLY: &str = "; HttpOnly; SameSite=Lax";
        const SECURE: &str = "; Secure";
        const FOR_THE_HOST: &str = "; Path=/; Max-Age=";
        let mut seconds = itoa::Buffer::new();
        let seconds = seconds.format(self.max_age.as_secs());
        let attributes = HTTP_ONLY.len() + SECURE.len() + FOR_THE_HOST.len() + seconds.len();
        let mut line = String::with_capacity(name.len() + 1 + value.len() + attributes);
        line.push_str(name);
        line.push('=');
        line.push_str(value);
        line.push_str(HTTP_ONLY);
        if self.secure {
            line.push_str(SECURE);
        }
        line.push_str(FOR_THE_HOST);
        line.push_str(seconds);
        HeaderValue::try_from(line).ok()
    }

    /// The value the browser sent for the cookie `name`, from the request's `Cookie` headers
    /// (RFC 6265 §5.4: `name=value` pairs split by `;`). Like a cookie jar, the last pair of
    /// that name wins, and whitespace and double quotes around a value are dropped. A header
    /// that is not text is skipped.
    pub(crate) fn sent<'h>(name: &str, headers: &'h HeaderMap) -> Option<&'h str> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|line| line.to_str().ok())
            .flat_map(|line| line.split(';'))
            .filter_map(|pair| pair.split_once('='))
            .filter(|(sent, _)| sent.trim() == name)
            .map(|(_, value)| {
                let value = value.trim();
                value.strip_prefix('"').and_then(|quoted| quoted.strip_suffix('"')).unwrap_or(value)
            })
            .next_back()
    }

    pub(crate) fn new(config: &Config) -> Self {
        let secure = config.is_https();
        Self {
            name: if secure { "__Host-noh_browser" } else { "noh_browser" },
            finished_name: if secure { "__Host-noh_finished" } else { "noh_finished" },
            secure,
            max_age: config.state_ttl + Duration::from_secs(60),
        }
    }
}

/// The request state: every service a handler may extract. One `Arc`, because axum clones the
/// state for every request: a struct of six handles cost each request six atomic increments
/// and decrements on counters every core shares (3 % of `/connect`'s time).
#[derive(Clone)]
pub(crate) struct AppState(Arc<RequestServices>);

/// The services behind [`AppState`].
pub(crate) struct RequestServices {
    pub(crate) flow: Arc<Flow>,
    pub(crate) links: Arc<Links>,
    pub(crate) lifecycle: Arc<Lifecycle>,
    pub(crate) proxy: Arc<NotionProxy>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) pages: Arc<Pages>,
    pub(crate) browser_cookie: BrowserCookie,
    pub(crate) rate_limits: Arc<RateLimits>,
    pub(crate) metrics: Arc<Metrics>,
}

impl AppState {
    pub(crate) fn new(services: RequestServices) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = RequestServices;

    fn deref(&self) -> &RequestServices {
        &self.0
    }
}

/// Lets a handler extract `State<$type>` for one field of the state.
macro_rules! substate {
    ($field:ident: $type:ty) => {
        impl FromRef<AppState> for $type {
            fn from_ref(state: &AppState) -> Self {
                state.$field.clone()
            }
        }
    };
}

substate!(flow: Arc<Flow>);
substate!(links: Arc<Links>);
substate!(lifecycle: Arc<Lifecycle>);
substate!(proxy: Arc<NotionProxy>);
substate!(store: Arc<dyn Store>);
substate!(pages: Arc<Pages>);
substate!(browser_cookie: BrowserCookie);
substate!(rate_limits: Arc<RateLimits>);
substate!(metrics: Arc<Metrics>);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cookie(secure: bool) -> BrowserCookie {
        BrowserCookie {
            name: "noh_browser",
            finished_name: "noh_finished",
            secure,
            max_age: Duration::from_secs(660),
        }
    }

    fn headers(lines: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(header::COOKIE, HeaderValue::from_bytes(line).unwrap());
        }
        headers
    }

    #[test]
    fn a_cookie_is_set_out_of_scripts_reach_for_the_whole_host_and_secure_over_https() {
        assert_eq!(
            cookie(false).set("noh_browser", "abc-_1").unwrap(),
            "noh_browser=abc-_1; HttpOnly; SameSite=Lax; Path=/; Max-Age=660"
        );
        assert_eq!(
            cookie(true).set("__Host-noh_browser", "abc").unwrap(),
            "__Host-noh_browser=abc; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=660"
        );
        // A value a header cannot carry is refused, not sent cut or mangled.
        assert!(cookie(false).set("noh_browser", "a\nb").is_none());
    }

    #[test]
    fn the_cookie_sent_is_found_by_its_exact_name_among_others() {
        let sent = headers(&[b"a=1; noh_browser=first;other=x", b" noh_browser = \"last\" ;z=9"]);
        // Like a jar: the last of a name wins, and spaces and quotes around a value go.
        assert_eq!(BrowserCookie::sent("noh_browser", &sent), Some("last"));
        assert_eq!(BrowserCookie::sent("other", &sent), Some("x"));
        assert_eq!(BrowserCookie::sent("noh_finished", &sent), None);
        // A prefix or a longer name is another cookie.
        let sent = headers(&[b"noh_browser_old=1; xnoh_browser=2; noh_browsers=3"]);
        assert_eq!(BrowserCookie::sent("noh_browser", &sent), None);
        // Pieces without `=`, empty values and a header that is not text are no trouble.
        let sent = headers(&[b"\xff\xfe noh_browser=bad", b";;noh_browser;", b"noh_browser="]);
        assert_eq!(BrowserCookie::sent("noh_browser", &sent), Some(""));
        assert_eq!(BrowserCookie::sent("noh_browser", &HeaderMap::new()), None);
    }
}
