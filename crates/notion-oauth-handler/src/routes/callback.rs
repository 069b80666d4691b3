//! `GET /callback`: the redirect URI Notion sends the browser back to.

use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar};
use minijinja::context;
use url::Url;

use crate::config::connect::fill;
use crate::flow::{self, CallbackParams, Finished, browser_cookie_name};
use crate::hooks::Outcome;
use crate::startup::AppState;
use crate::store::Upserted;

pub async fn oauth_callback(
    State(app): State<AppState>,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> Response {
    let cookie = jar.get(browser_cookie_name(&app.config)).map(Cookie::value);
    let finished = match CallbackParams::parse(query.as_deref()) {
        Ok(params) => flow::finish(&app, params, cookie).await,
        Err(error) => Err(error),
    };
    match finished {
        Ok(Finished::Connected { response, outcome, reference, return_to }) => {
            let outcome = if outcome == Upserted::Created { "created" } else { "reauthorized" };
            let values = [
                ("bot_id", response.bot_id.as_str()),
                ("workspace_id", response.workspace_id.as_str()),
                ("ref", reference.as_deref().unwrap_or("")),
                ("outcome", outcome),
            ];
            if let Some(location) = back_to_the_app(
                return_to.as_deref(),
                app.config.connect.success_redirect.as_deref(),
                &values,
            ) {
                return see_other(&location);
            }
            let viewed = app.view_response(&Outcome::Connected {
                bot_id: response.bot_id.as_str(),
                workspace_id: response.workspace_id.as_str(),
                workspace_name: response.workspace_name.as_deref(),
                reference: reference.as_deref(),
                outcome,
            });
            if let Some(viewed) = viewed {
                return viewed;
            }
            let workspace =
                response.workspace_name.clone().unwrap_or_else(|| "your Notion workspace".into());
            // Notion sends an https URL; inline images are harmless in an <img> and allowed by
            // the page policy. Anything else (javascript:, http:) is not shown.
            let icon = response
                .workspace_icon
                .as_deref()
                .filter(|icon| icon.starts_with("https://") || icon.starts_with("data:image/"));
            let values = context! {
                workspace,
                icon,
                outcome,
                template_id => response.duplicated_template_id.clone(),
                reference,
            };
            app.pages.render(StatusCode::OK, "success.html", values).into_response()
        }
        Ok(Finished::Denied { reference, return_to }) => {
            tracing::info!("the user did not grant access");
            let values = [("ref", reference.as_deref().unwrap_or("")), ("outcome", "denied")];
            if let Some(location) = back_to_the_app(
                return_to.as_deref(),
                app.config.connect.denied_redirect.as_deref(),
                &values,
            ) {
                return see_other(&location);
            }
            if let Some(viewed) =
                app.view_response(&Outcome::Denied { reference: reference.as_deref() })
            {
                return viewed;
            }
            let retry_url = match crate::links::reconnect_url(&app, reference.as_deref()).await {
                Ok(url) => url.to_string(),
                Err(error) => return super::flow_error(&app, &error),
            };
            app.pages
                .render(StatusCode::OK, "denied.html", context! { reference, retry_url })
                .into_response()
        }
        Err(error) => {
            let request_id = error.request_id();
            if error.is_server_side() {
                tracing::error!(error = %error, request_id, "a callback failed");
            } else {
                tracing::warn!(error = %error, request_id, "a callback was refused");
            }
            super::flow_error(&app, &error)
        }
    }
}

/// Where the app asked the browser to go: the flow's `return_to` (checked against the allowed
/// origins when the flow started, and signed into the state since) with the outcome appended,
/// else the configured redirect template, else nowhere (our own page is shown).
fn back_to_the_app(
    return_to: Option<&str>,
    template: Option<&str>,
    values: &[(&str, &str)],
) -> Option<String> {
    if let Some(mut url) = return_to.and_then(|r| Url::parse(r).ok()) {
        {
            let mut query = url.query_pairs_mut();
            for (name, value) in values.iter().filter(|(_, v)| !v.is_empty()) {
                query.append_pair(name, value);
            }
        }
        return Some(url.to_string());
    }
    template.map(|template| fill(template, values))
}

fn see_other(location: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, location.to_owned())]).into_response()
}
