//! `GET /connect`: start a flow and send the browser to Notion.

use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};

use crate::flow::{self, browser_cookie_name};
use crate::startup::AppState;

pub async fn start_connect(
    State(app): State<AppState>,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> Response {
    let name = browser_cookie_name(&app.config);
    let started = match crate::links::read_connect_request(&app, query.as_deref()).await {
        Ok(request) => flow::start(&app, jar.get(name).map(Cookie::value), request),
        Err(error) => Err(error),
    };
    match started {
        Ok(started) => {
            let max_age = flow::cookie_max_age(app.config.state_ttl);
            let cookie = Cookie::build((name, started.browser_cookie))
                .http_only(true)
                // Lax still travels on the top-level redirect back from Notion.
                .same_site(SameSite::Lax)
                .secure(app.config.is_https())
                // `__Host-` cookies must have Path=/; one cookie for the whole host is what we want.
                .path("/")
                .max_age(time::Duration::seconds(
                    i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
                ));
            let location = started.authorize_url.to_string();
            (jar.add(cookie), (StatusCode::FOUND, [(header::LOCATION, location)])).into_response()
        }
        Err(error) => {
            tracing::warn!(error = %error, "a connect request was refused");
            super::flow_error(&app, &error)
        }
    }
}
