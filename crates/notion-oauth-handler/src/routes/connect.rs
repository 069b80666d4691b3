//! `GET /connect`: start a flow and send the browser to Notion.

use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};

use crate::flow::{self, BROWSER_COOKIE, FlowError};
use crate::startup::AppState;

pub async fn start_connect(
    State(app): State<AppState>,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> Response {
    let started = read_ref(query.as_deref()).and_then(|reference| {
        flow::start(&app, jar.get(BROWSER_COOKIE).map(Cookie::value), reference)
    });
    match started {
        Ok(started) => {
            let path = if app.config.base_path.is_empty() {
                "/".to_owned()
            } else {
                app.config.base_path.clone()
            };
            let max_age = flow::cookie_max_age(app.config.state_ttl);
            let cookie = Cookie::build((BROWSER_COOKIE, started.browser_cookie))
                .http_only(true)
                // Lax still travels on the top-level redirect back from Notion.
                .same_site(SameSite::Lax)
                .secure(app.config.is_https())
                .path(path)
                .max_age(time::Duration::seconds(
                    i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
                ));
            let location = started.authorize_url.to_string();
            (jar.add(cookie), (StatusCode::FOUND, [(header::LOCATION, location)])).into_response()
        }
        Err(error) => {
            tracing::warn!(error = %error, "a connect request was refused");
            app.pages.error(&error, app.config.state_ttl.as_secs() / 60).into_response()
        }
    }
}

/// The optional `ref`; other parameters (campaign tags and the like) are ignored, but a
/// repeated `ref` is ambiguous and refused.
fn read_ref(query: Option<&str>) -> Result<Option<String>, FlowError> {
    let mut found = None;
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if name == "ref" {
            if found.is_some() {
                return Err(FlowError::RepeatedParameter("ref".into()));
            }
            found = Some(value.into_owned());
        }
    }
    Ok(found)
}
