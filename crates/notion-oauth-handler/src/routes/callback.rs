//! `GET /callback`: the redirect URI Notion sends the browser back to.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum_extra::extract::cookie::{Cookie, CookieJar};
use minijinja::context;

use crate::flow::{self, CallbackParams, Finished, browser_cookie_name};
use crate::pages::Page;
use crate::startup::AppState;
use crate::store::Upserted;

pub async fn oauth_callback(
    State(app): State<AppState>,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> Page {
    let cookie = jar.get(browser_cookie_name(&app.config)).map(Cookie::value);
    let finished = match CallbackParams::parse(query.as_deref()) {
        Ok(params) => flow::finish(&app, params, cookie).await,
        Err(error) => Err(error),
    };
    match finished {
        Ok(Finished::Connected { response, outcome }) => {
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
                outcome => if outcome == Upserted::Created { "created" } else { "reauthorized" },
                template_id => response.duplicated_template_id.clone(),
            };
            app.pages.render(StatusCode::OK, "success.html", values)
        }
        Ok(Finished::Denied { reference }) => {
            tracing::info!("the user did not grant access");
            app.pages.render(StatusCode::OK, "denied.html", context! { reference })
        }
        Err(error) => {
            let request_id = error.request_id();
            if error.is_server_side() {
                tracing::error!(error = %error, request_id, "a callback failed");
            } else {
                tracing::warn!(error = %error, request_id, "a callback was refused");
            }
            app.pages.error(&error, app.config.state_ttl.as_secs() / 60)
        }
    }
}
