//! `GET /connect`: start a flow and send the browser to Notion.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
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
            // Sized once for everything the answer will carry: a header map that grew on the way
            // was rehashed, 2 % of `/connect`'s instructions (callgrind).
            let mut headers = HeaderMap::with_capacity(2 + super::PAGE_HEADERS_AT_MOST);
            match HeaderValue::try_from(started.authorize_url) {
                Ok(location) => headers.insert(header::LOCATION, location),
                // Made from a parsed URL and a base64 state: a bug if ever seen.
                Err(_) => {
                    tracing::error!("the authorize URL made for a flow is not a header value");
                    return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                }
            };
            match browser.set(browser.name, &started.browser_cookie) {
                Some(cookie) => {
                    headers.insert(header::SET_COOKIE, cookie);
                }
                // The callback will say the browser lost its cookie; the log says why.
                None => tracing::error!("the browser cookie made for a flow cannot be sent"),
            }
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::FOUND;
            *response.headers_mut() = headers;
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
