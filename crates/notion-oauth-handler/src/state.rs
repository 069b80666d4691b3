//! What request handlers reach: the services, each extracted on its own (axum `FromRef`
//! substates), so a handler names the one it uses and cannot reach the others.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;

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
    pub(crate) fn set(
        &self,
        name: &'static str,
        value: String,
    ) -> axum_extra::extract::cookie::Cookie<'static> {
        axum_extra::extract::cookie::Cookie::build((name, value))
            .http_only(true)
            .same_site(axum_extra::extract::cookie::SameSite::Lax)
            .secure(self.secure)
            .path("/")
            .max_age(time::Duration::seconds(
                i64::try_from(self.max_age.as_secs()).unwrap_or(i64::MAX),
            ))
            .build()
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
