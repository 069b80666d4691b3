//! `GET /connect`: start a flow and send the browser to Notion.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{Admitted, SentCookies};
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
    sent: SentCookies,
    RawQuery(query): RawQuery,
) -> Response {
    let started = match links.read(query.as_deref()).await {
        Ok(request) => flow.start(sent.as_browser().binding, request),
        Err(error) => Err(error),
    };
    match started {
        Ok(started) => {
            metrics.flow_started();
            let mut response =
                (StatusCode::FOUND, [(header::LOCATION, started.authorize_url)]).into_response();
            match browser.set(browser.name, &started.browser_cookie) {
                Some(cookie) => {
                    response.headers_mut().append(header::SET_COOKIE, cookie);
                }
                // The callback will say the browser lost its cookie; the log says why.
                None => tracing::error!("the browser cookie made for a flow cannot be sent"),
            }
            response
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
