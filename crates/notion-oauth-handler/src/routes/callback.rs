//! `GET /callback`: the redirect URI Notion sends the browser back to.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum_extra::extract::cookie::{Cookie, CookieJar};

use super::Admitted;
use crate::flow::{CallbackParams, Finished, Flow};
use crate::links::Links;
use crate::metrics::FlowOutcome;
use crate::pages::Pages;
use crate::state::BrowserCookie;
use crate::telemetry::Chain;

pub(super) async fn oauth_callback(
    Admitted { metrics }: Admitted,
    State(flow): State<Arc<Flow>>,
    State(links): State<Arc<Links>>,
    State(pages): State<Arc<Pages>>,
    State(browser): State<BrowserCookie>,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> Response {
    let cookie = jar.get(browser.name).map(Cookie::value);
    let finished = match CallbackParams::parse(query.as_deref()) {
        Ok(params) => flow.finish(params, cookie).await,
        Err(error) => Err(error),
    };
    match finished {
        Ok(Finished::Connected(connected)) => {
            metrics.flow_finished(FlowOutcome::Connected);
            pages.connected(&connected)
        }
        Ok(Finished::Denied { reference, return_to }) => {
            metrics.flow_finished(FlowOutcome::Denied);
            denied_response(&pages, &links, reference.as_deref(), return_to.as_deref()).await
        }
        Err(error) => {
            metrics.flow_refused(error.page(0).reason);
            metrics.flow_finished(FlowOutcome::Refused);
            let request_id = error.request_id();
            if error.is_server_side() {
                tracing::error!(error = %Chain(&error), request_id, "a callback failed");
            } else {
                tracing::warn!(error = %Chain(&error), request_id, "a callback was refused");
            }
            pages.failed(&error)
        }
    }
}

/// Where a user who cancelled goes: where the app said, or the page offering to try again (with
/// a link the server will accept for the same `ref`, made only when that page is shown).
async fn denied_response(
    pages: &Pages,
    links: &Links,
    reference: Option<&str>,
    return_to: Option<&str>,
) -> Response {
    if let Some(elsewhere) = pages.denied_elsewhere(reference, return_to) {
        return elsewhere;
    }
    match links.reconnect_url(reference).await {
        Ok(retry_url) => pages.denied(reference, &retry_url),
        Err(error) => pages.failed(&error),
    }
}
