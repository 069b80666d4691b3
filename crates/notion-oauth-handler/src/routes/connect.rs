//! `GET /connect`: start a flow and send the browser to Notion.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};

use super::Admitted;
use crate::flow::Flow;
use crate::links::Links;
use crate::pages::Pages;
use crate::state::BrowserCookie;
use crate::telemetry::Chain;

pub(super) async fn start_connect(
    Admitted { metrics }: Admitted,
    State(links): State<Arc<Links>>,
    State(flow): State<Arc<Flow>>,
    State(pages): State<Arc<Pages>>,
    State(browser): State<BrowserCookie>,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> Response {
    let started = match links.read(query.as_deref()).await {
        Ok(request) => flow.start(jar.get(browser.name).map(Cookie::value), request),
        Err(error) => Err(error),
    };
    match started {
        Ok(started) => {
            metrics.flow_started();
            let cookie = Cookie::build((browser.name, started.browser_cookie))
                .http_only(true)
                // Lax still travels on the top-level redirect back from Notion.
                .same_site(SameSite::Lax)
                .secure(browser.secure)
                // `__Host-` cookies must have Path=/; one cookie for the whole host is what we want.
                .path("/")
                .max_age(time::Duration::seconds(
                    i64::try_from(browser.max_age.as_secs()).unwrap_or(i64::MAX),
                ));
            (jar.add(cookie), (StatusCode::FOUND, [(header::LOCATION, started.authorize_url)]))
                .into_response()
        }
        Err(error) => {
            tracing::warn!(error = %Chain(&error), "a connect request was refused");
            metrics.flow_refused(error.page(0).reason);
            // A link's ref is not carried over: it was refused (expired, used, unsigned), and a
            // fresh one is the app's to make.
            let again = super::callback::start_again(&links, None).await;
            pages.failed(&error, again.as_ref())
        }
    }
}
