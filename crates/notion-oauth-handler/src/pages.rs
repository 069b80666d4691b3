//! The HTML pages a visitor sees, from templates compiled into the binary.

use std::path::Path;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::{Environment, Value, context};
use notion_oauth::{NotionError, StateError};

use crate::config::Document;
use crate::flow::FlowError;

/// A rendered page with its status.
pub struct Page {
    pub status: StatusCode,
    pub html: String,
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        (self.status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], self.html)
            .into_response()
    }
}

/// The templates, and what every page shows (links to the hosted documents).
pub struct Pages {
    env: Environment<'static>,
    base: String,
    documents: Value,
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pages").finish_non_exhaustive()
    }
}

impl Pages {
    /// Loads the built-in templates.
    ///
    /// # Errors
    /// A template that does not parse (a build defect, caught by every test).
    pub fn new(
        base_path: &str,
        documents: &[Document],
        overrides: Option<&Path>,
    ) -> Result<Self, minijinja::Error> {
        let env = crate::templates::environment(overrides)?;
        let documents: Vec<Value> = documents
            .iter()
            .map(|doc| {
                let title =
                    doc.path.rsplit('/').next().unwrap_or_default().replace(['-', '_'], " ");
                let mut chars = title.chars();
                let title: String = chars
                    .next()
                    .map(|c| c.to_uppercase().chain(chars).collect())
                    .unwrap_or_default();
                context! { path => doc.path.clone(), title }
            })
            .collect();
        Ok(Self { env, base: base_path.to_owned(), documents: Value::from(documents) })
    }

    /// Renders `name` with `values`, or a plain fallback if rendering fails.
    pub fn render(&self, status: StatusCode, name: &str, values: Value) -> Page {
        let values =
            context! { base => self.base.clone(), documents => self.documents.clone(), ..values };
        match self.env.get_template(name).and_then(|t| t.render(values)) {
            Ok(html) => Page { status, html },
            Err(error) => {
                tracing::error!(template = name, error = %error, "a page failed to render");
                Page {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    html: "<h1>Something went wrong</h1>".into(),
                }
            }
        }
    }

    /// The page for a flow that could not finish.
    pub fn error(&self, error: &FlowError, state_ttl_minutes: u64) -> Page {
        let (status, reason, title, message) = describe(error, state_ttl_minutes);
        let request_id = error.request_id();
        self.render(status, "error.html", context! { reason, title, message, request_id })
    }
}

/// Status, a stable machine-readable reason, a title and a message in the visitor's words.
pub(crate) fn describe(
    error: &FlowError,
    ttl_minutes: u64,
) -> (StatusCode, &'static str, &'static str, String) {
    use FlowError as F;
    let bad_link = "This link is not valid";
    match error {
        F::QueryTooLong | F::RepeatedParameter(_) | F::UnexpectedParameter(_) | F::ParameterTooLong(_) | F::CodeAndError => (
            StatusCode::BAD_REQUEST,
            "malformed_callback",
            bad_link,
            format!("The address you arrived at was changed or damaged ({error}). Start again from the beginning."),
        ),
        F::MissingCode => (
            StatusCode::BAD_REQUEST,
            "missing_code",
            "This link is incomplete",
            "Notion's answer carries no authorization code. Start again from the beginning.".into(),
        ),
        F::MissingState => (
            StatusCode::BAD_REQUEST,
            "missing_state",
            "Please start from this site",
            "This installation was not started here, so it cannot be completed safely. Use the Add to Notion button to connect.".into(),
        ),
        F::BadState(StateError::Expired(_)) => (
            StatusCode::BAD_REQUEST,
            "expired_state",
            "This link has expired",
            format!("More than {ttl_minutes} minutes passed since you started connecting. Start again."),
        ),
        F::BadState(_) => (
            StatusCode::BAD_REQUEST,
            "invalid_state",
            bad_link,
            "The sign-in link was altered or does not come from this site. Start again from the beginning.".into(),
        ),
        F::OtherBrowser => (
            StatusCode::FORBIDDEN,
            "other_browser",
            "Finish in the browser you started in",
            "This connection was started in another browser, or your browser did not send this site's cookie. Start again in this browser, with cookies allowed for this site.".into(),
        ),
        F::Replayed => (
            StatusCode::BAD_REQUEST,
            "replayed_state",
            "This link was already used",
            "Each link works once. If connecting worked the first time, you are done; otherwise start again.".into(),
        ),
        F::BadRef => (
            StatusCode::BAD_REQUEST,
            "invalid_ref",
            bad_link,
            format!("The link's ref is longer than {} characters or holds control characters.", crate::flow::MAX_REF_CHARS),
        ),
                F::ReturnToNotAllowed => (
            StatusCode::BAD_REQUEST,
            "return_to_not_allowed",
            bad_link,
            "This link would send you somewhere this site does not trust afterwards, so it was not followed. Use the link from the app you came from.".into(),
        ),
        F::UnsignedLink => (
            StatusCode::BAD_REQUEST,
            "unsigned_link",
            bad_link,
            "This link is not one the app vouched for. Go back to the app and use the connect button there.".into(),
        ),
        F::InvalidLink => (
            StatusCode::BAD_REQUEST,
            "invalid_link",
            bad_link,
            "This link was altered or is incomplete. Go back to the app and use the connect button there.".into(),
        ),
        F::ExpiredLink => (
            StatusCode::BAD_REQUEST,
            "expired_link",
            "This link has expired",
            "Go back to the app and use the connect button there for a fresh link.".into(),
        ),
        F::UsedLink => (
            StatusCode::BAD_REQUEST,
            "used_link",
            "This link was already used",
            "Each of these links works once, for a limited time. Go back to the app for a fresh one.".into(),
        ),
                F::LinkTooLong => (
            StatusCode::BAD_REQUEST,
            "link_too_long",
            bad_link,
            "This link carries more than can travel through Notion and back. The app that made it needs to shorten its ref or return address.".into(),
        ),
        F::NotionReported(code) => (
            StatusCode::BAD_GATEWAY,
            "notion_error",
            "Notion could not complete the connection",
            format!("Notion reported \u{201c}{code}\u{201d}. Nothing was saved. Try again in a moment."),
        ),
        F::Exchange(e) if e.is_invalid_grant() => (
            StatusCode::BAD_REQUEST,
            "code_rejected",
            "Notion did not accept this authorization",
            "The authorization expired or was already used. Nothing was saved. Start again.".into(),
        ),
        F::Exchange(e) if e.is_invalid_client() => (
            StatusCode::BAD_GATEWAY,
            "integration_misconfigured",
            "This integration is misconfigured",
            "Notion rejected this integration's credentials, so nothing was saved. The site's operator needs to check its client ID and secret; please try again later.".into(),
        ),
        F::Exchange(NotionError::Timeout(_)) => (
            StatusCode::GATEWAY_TIMEOUT,
            "notion_timeout",
            "Notion did not answer in time",
            "Nothing was saved. Try again in a moment.".into(),
        ),
        F::Exchange(NotionError::InvalidResponse { .. }) => (
            StatusCode::BAD_GATEWAY,
            "notion_garbled",
            "Notion's answer could not be understood",
            "Nothing was saved. Try again in a few minutes.".into(),
        ),
        F::Exchange(_) => (
            StatusCode::BAD_GATEWAY,
            "notion_unavailable",
            "Notion is not available right now",
            "Nothing was saved. Try again in a few minutes.".into(),
        ),
        F::Store(_) | F::Randomness(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Something went wrong on our side",
            "Nothing was saved. Try again in a few minutes; if it keeps happening, contact this site's operator.".into(),
        ),
    }
}
