//! `GET /callback`: the redirect URI Notion sends the browser back to.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::Response;

use super::{Admitted, SentCookies};
use crate::flow::{CallbackParams, Finished, Flow, Refused, Restart};
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
    sent: SentCookies,
    RawQuery(query): RawQuery,
) -> Response {
    let cookies = sent.as_browser();
    let finished = match CallbackParams::parse(query.as_deref()) {
        Ok(params) => flow.finish(params, cookies).await,
        Err(error) => Err(Refused::from(error)),
    };
    match finished {
        Ok(Finished::Connected(mut connected)) => {
            metrics.flow_finished(FlowOutcome::Connected);
            let proof = connected.proof.take();
            let mut page = pages.connected(&connected, false);
            // The proof lives as long as the flow's state could come back.
            match proof.map(|proof| browser.set(browser.finished_name, &proof)) {
                Some(Some(cookie)) => {
                    page.headers_mut().append(header::SET_COOKIE, cookie);
                }
                // A reload then shows a failure page instead of this one; the log says why.
                Some(None) => tracing::error!("the proof cookie made for a flow cannot be sent"),
                None => {}
            }
            page
        }
        Ok(Finished::Reloaded(connected)) => pages.connected(&connected, true),
        Ok(Finished::Denied(restart)) => {
            metrics.flow_finished(FlowOutcome::Denied);
            denied_response(&pages, &links, &restart).await
        }
        // The cancelled flow's page again: its link to try again, no second report, and not
        // back to the app (the first callback may have ended elsewhere).
        Ok(Finished::DeniedAgain(restart)) => {
            let again = start_again(&links, Some(&restart)).await;
            pages.denied(restart.reference.as_deref(), again.as_ref())
        }
        Err(Refused { error, restart }) => {
            metrics.flow_refused(error.page(0).reason);
            metrics.flow_finished(FlowOutcome::Refused);
            let request_id = error.request_id();
            if error.is_server_side() {
                tracing::error!(error = %Chain(&error), request_id, "a callback failed");
            } else {
                tracing::warn!(error = %Chain(&error), request_id, "a callback was refused");
            }
            let again = start_again(&links, restart.as_ref()).await;
            pages.failed(&error, again.as_ref())
        }
    }
}

/// The link a page offers to start again: with the flow's `ref` and `return_to` when its state
/// was this browser's, else the bare `/connect` (also when a link to keep them cannot be made).
/// `None` when the app's own link that started the flow has expired: only the app can make a
/// new one.
pub(super) async fn start_again(links: &Links, restart: Option<&Restart>) -> Option<url::Url> {
    match links.again(restart).await {
        Ok(url) => url,
        Err(error) => {
            tracing::warn!(error = %Chain(&error), "could not make a link that keeps the flow's ref; offering a plain one");
            Some(links.connect_url().clone())
        }
    }
}

/// Where a user who cancelled goes: where the app said, or the page offering to try again (with
/// a link the server will accept for the same `ref` and `return_to`).
async fn denied_response(pages: &Pages, links: &Links, restart: &Restart) -> Response {
    let (reference, return_to) = (restart.reference.as_deref(), restart.return_to.as_deref());
    if let Some(elsewhere) = pages.denied_elsewhere(reference, return_to) {
        return elsewhere;
    }
    let again = start_again(links, Some(restart)).await;
    pages.denied(reference, again.as_ref())
}
