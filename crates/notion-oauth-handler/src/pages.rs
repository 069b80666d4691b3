//! What the browser sees: the HTML pages, and where a flow ends. A flow ends at the app's own
//! address when it asked for one (`return_to`, or a redirect template), else on the embedding
//! app's view when it answers, else on a built-in page.

use std::sync::Arc;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::{Environment, Value, context};
use notion_oauth::{Icon, NotionError, SharedKind, StateError};
use url::Url;

use crate::config::{Accent, Branding, Config, fill};
use crate::domain::Reference;
use crate::flow::{Connected, FlowError};
use crate::hooks::{ConnectView, Outcome};
use crate::telemetry::Chain;

/// A rendered page with its status.
pub(crate) struct Page {
    status: StatusCode,
    html: String,
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        (self.status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], self.html)
            .into_response()
    }
}

/// The page a failed flow shows: its status, a stable machine-readable reason, a title and a
/// message in the visitor's words.
pub(crate) struct ErrorPage {
    pub(crate) status: StatusCode,
    pub(crate) reason: &'static str,
    pub(crate) title: &'static str,
    pub(crate) message: String,
}

/// The templates, what every page shows (links to the hosted documents), and where flows end.
pub(crate) struct Pages {
    env: Environment<'static>,
    base: String,
    documents: Value,
    /// An embedding app's own pages, consulted before the built-in ones.
    view: Option<Arc<dyn ConnectView>>,
    /// `connect.success_redirect`: where a connected browser goes instead of the success page.
    success_redirect: Option<String>,
    /// `connect.denied_redirect`: where a browser that cancelled goes instead of the page.
    denied_redirect: Option<String>,
    /// How long a flow may take, for the "expired" page's words.
    state_ttl_minutes: u64,
    /// A local emulator's `http://127.0.0.1:…/` prefix, whose icons are shown too.
    local_icons: Option<String>,
    /// What every page shows of the app (`[branding]`), ready for the templates.
    brand: Value,
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pages").finish_non_exhaustive()
    }
}

impl Pages {
    /// The pages `config` describes, with the embedding app's `view` if it has one.
    ///
    /// # Errors
    /// A template that does not parse (an override: the configuration check catches those).
    pub(crate) fn new(
        config: &Config,
        view: Option<Arc<dyn ConnectView>>,
    ) -> Result<Self, minijinja::Error> {
        let env = crate::templates::environment(config.templates_dir.as_deref())?;
        let documents: Vec<Value> = config
            .documents
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
        Ok(Self {
            env,
            base: config.base_path.clone(),
            documents: Value::from(documents),
            view,
            success_redirect: config.connect.success_redirect.clone(),
            denied_redirect: config.connect.denied_redirect.clone(),
            state_ttl_minutes: config.state_ttl.as_secs() / 60,
            local_icons: config.local_notion_origin().map(|origin| format!("{origin}/")),
            brand: brand(&config.branding),
        })
    }

    /// Renders `name` with `values`, or a plain fallback if rendering fails.
    pub(crate) fn render(&self, status: StatusCode, name: &str, values: Value) -> Page {
        let values = context! {
            base => self.base.clone(),
            documents => self.documents.clone(),
            brand => self.brand.clone(),
            ..values
        };
        match self.env.get_template(name).and_then(|t| t.render(values)) {
            Ok(html) => Page { status, html },
            Err(error) => {
                tracing::error!(template = name, error = %Chain(&error), "a page failed to render");
                Page {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    html: "<h1>Something went wrong</h1>".into(),
                }
            }
        }
    }

    /// The landing page. Its button passes `query` (`ref`, `return_to`, a signed or one-time
    /// link) on to `/connect` unchanged: nothing is used up by viewing this page.
    pub(crate) fn landing(&self, query: Option<String>) -> Page {
        let query = query.filter(|q| !q.is_empty() && q.len() <= 4096);
        self.render(StatusCode::OK, "landing.html", context! { query, step => 1 })
    }

    /// The page for an address the server does not answer.
    pub(crate) fn not_found(&self) -> Page {
        let values = context! {
            reason => "not_found",
            title => "Page not found",
            message => "There is nothing at this address. To connect Notion, start from the button below.",
            again => format!("{}/", self.base),
            again_label => "Go to the start",
        };
        self.render(StatusCode::NOT_FOUND, "error.html", values)
    }

    /// A client past its rate limit: when it may come back, in words and in `Retry-After`.
    pub(crate) fn rate_limited(&self, retry_after_seconds: u64) -> Response {
        let wait = match retry_after_seconds {
            1 => "a second".to_owned(),
            2..=90 => format!("{retry_after_seconds} seconds"),
            _ => minutes(retry_after_seconds.div_ceil(60)),
        };
        let values = context! {
            reason => "rate_limited",
            title => "Too many attempts",
            message => format!("Too many requests came from your network in a short time. Wait {wait} and try again."),
            again => format!("{}/", self.base),
            again_label => "Go to the start",
        };
        let mut response =
            self.render(StatusCode::TOO_MANY_REQUESTS, "error.html", values).into_response();
        response.headers_mut().insert(header::RETRY_AFTER, retry_after_seconds.into());
        response
    }

    /// A flow that could not go on: the embedding app's view if it answers, else the error page,
    /// whose "Start again" goes to `again`.
    pub(crate) fn failed(&self, error: &FlowError, again: Option<&Url>) -> Response {
        let page = error.page(self.state_ttl_minutes);
        let request_id = error.request_id();
        let outcome = Outcome::Failed {
            reason: page.reason,
            status: page.status.as_u16(),
            message: &page.message,
            request_id,
        };
        if let Some(viewed) = self.view(&outcome) {
            return viewed;
        }
        let ErrorPage { status, reason, title, message } = page;
        let values = context! {
            reason, title, message, request_id,
            again => again.map(Url::to_string),
            again_label => "Start again",
            link_expired => again.is_none(),
            step => 3,
        };
        self.render(status, "error.html", values).into_response()
    }

    /// A stored connection: back to the app, or its view, or the success page. `reloaded` when
    /// the browser came back to a flow it had finished: the same page, said so.
    pub(crate) fn connected(&self, connected: &Connected, reloaded: bool) -> Response {
        let Connected { bot_id, workspace_id, reference, return_to, outcome, .. } = connected;
        // A reload says so, so that an app acting on these parameters does not act twice.
        let values = [
            ("bot_id", bot_id.as_str()),
            ("workspace_id", workspace_id.as_str()),
            ("ref", reference.as_deref().unwrap_or("")),
            ("outcome", outcome.as_str()),
            ("reloaded", if reloaded { "true" } else { "" }),
        ];
        if let Some(location) =
            back_to_the_app(return_to.as_deref(), self.success_redirect.as_deref(), &values)
        {
            return see_other(&location);
        }
        let viewed = self.view(&Outcome::Connected {
            bot_id,
            workspace_id,
            workspace_name: connected.workspace_name.as_deref(),
            reference: reference.as_deref(),
            outcome: *outcome,
            reloaded,
        });
        if let Some(viewed) = viewed {
            return viewed;
        }
        let workspace =
            connected.workspace_name.clone().unwrap_or_else(|| "your Notion workspace".into());
        let shared: Vec<Value> = connected
            .shared
            .iter()
            .map(|object| {
                let (emoji, image) = match &object.icon {
                    Some(Icon::Emoji(emoji)) => (Some(emoji.as_str()), None),
                    Some(Icon::Image(url)) => (None, self.shown_image(url)),
                    None => (None, None),
                };
                let kind = match object.kind {
                    SharedKind::Page => "page",
                    SharedKind::Database | SharedKind::DataSource => "database",
                };
                let title = if object.title.trim().is_empty() { "Untitled" } else { &object.title };
                context! {
                    kind, title, emoji, image,
                    url => object.url.as_deref().filter(|url| url.starts_with("https://")),
                    id => object.id.clone(),
                }
            })
            .collect();
        // The duplicated template, linked where Notion opens it: from the list when search
        // found it, else by its id.
        let template_url = connected.template_id.as_deref().map(|id| {
            connected
                .shared
                .iter()
                .find(|object| object.id == id)
                .and_then(|object| object.url.clone())
                .filter(|url| url.starts_with("https://"))
                .unwrap_or_else(|| format!("https://www.notion.so/{}", id.replace('-', "")))
        });
        let values = context! {
            workspace,
            icon => connected.workspace_icon.as_deref().and_then(|icon| self.shown_image(icon)),
            outcome => outcome.as_str(),
            template_url,
            reference,
            shared,
            reloaded,
            step => 3,
        };
        self.render(StatusCode::OK, "success.html", values).into_response()
    }

    /// An image URL from Notion, if a page may show it: https (Notion's own), an inline image,
    /// or a local emulator's http URL; never `javascript:` or other http.
    fn shown_image<'a>(&self, url: &'a str) -> Option<&'a str> {
        let local = self.local_icons.as_deref();
        Some(url).filter(|url| {
            url.starts_with("https://")
                || url.starts_with("data:image/")
                || local.is_some_and(|origin| url.starts_with(origin))
        })
    }

    /// A cancelled flow, when the app said where it ends: back to the app, or its view. `None`
    /// leaves it to [`Pages::denied`].
    pub(crate) fn denied_elsewhere(
        &self,
        reference: Option<&str>,
        return_to: Option<&str>,
    ) -> Option<Response> {
        let values = [("ref", reference.unwrap_or("")), ("outcome", "denied"), ("reloaded", "")];
        if let Some(location) = back_to_the_app(return_to, self.denied_redirect.as_deref(), &values)
        {
            return Some(see_other(&location));
        }
        self.view(&Outcome::Denied { reference })
    }

    /// The "access was not granted" page, offering `retry_url` (none once the app's link that
    /// started the flow has expired).
    pub(crate) fn denied(&self, reference: Option<&str>, retry_url: Option<&Url>) -> Response {
        let values = context! {
            reference,
            retry_url => retry_url.map(Url::to_string),
            link_expired => retry_url.is_none(),
            step => 2,
        };
        self.render(StatusCode::OK, "denied.html", values).into_response()
    }

    fn view(&self, outcome: &Outcome<'_>) -> Option<Response> {
        self.view.as_ref().and_then(|view| view.respond(outcome))
    }
}

/// `[branding]` as the templates read it. Colours go into the page's style, so they are
/// formatted here from checked bytes, never copied from the configuration.
fn brand(branding: &Branding) -> Value {
    let accent = branding.accent.map(|Accent { color, text }| {
        context! { color => Accent::css(color), text => Accent::css(text) }
    });
    context! {
        app_name => branding.app_name.clone(),
        logo => branding.logo.clone(),
        accent,
        support_url => branding.support_url.as_ref().map(Url::to_string),
        app_url => branding.app_url.as_ref().map(Url::to_string),
    }
}

/// "1 minute", "5 minutes".
fn minutes(count: u64) -> String {
    if count == 1 { "1 minute".to_owned() } else { format!("{count} minutes") }
}

/// Where the app asked the browser to go: the flow's `return_to` (checked against the allowed
/// origins when the flow started, and signed into the state since) with the outcome appended,
/// else the configured redirect template, else nowhere (a page is shown).
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

// The page a flow error shows is presentation, so it is written here rather than beside the
// error: the flow stays free of HTTP statuses and the visitor's words.
impl FlowError {
    /// The error page for this failure; `ttl_minutes` is how long a flow may take.
    pub(crate) fn page(&self, ttl_minutes: u64) -> ErrorPage {
        use FlowError as F;
        let page =
            |status, reason, title, message: String| ErrorPage { status, reason, title, message };
        let bad_link = "This link is not valid";
        let start_again = "Start again from the beginning.";
        match self {
            F::QueryTooLong
            | F::RepeatedParameter(_)
            | F::UnexpectedParameter(_)
            | F::ParameterTooLong(_)
            | F::CodeAndError => page(
                StatusCode::BAD_REQUEST,
                "malformed_callback",
                bad_link,
                format!("The address you arrived at was changed or damaged ({self}). {start_again}"),
            ),
            F::MissingCode => page(
                StatusCode::BAD_REQUEST,
                "missing_code",
                "This link is incomplete",
                format!("Notion's answer carries no authorization code. {start_again}"),
            ),
            F::MissingState => page(
                StatusCode::BAD_REQUEST,
                "missing_state",
                "Please start from this site",
                "This installation was not started here, so it cannot be completed safely. Use the Add to Notion button to connect.".into(),
            ),
            F::BadState(StateError::Expired(_)) => page(
                StatusCode::BAD_REQUEST,
                "expired_state",
                "This link has expired",
                format!("More than {} passed since you started connecting. Start again.", minutes(ttl_minutes)),
            ),
            F::BadState(_) => page(
                StatusCode::BAD_REQUEST,
                "invalid_state",
                bad_link,
                format!("The sign-in link was altered or does not come from this site. {start_again}"),
            ),
            F::OtherBrowser => page(
                StatusCode::FORBIDDEN,
                "other_browser",
                "Finish in the browser you started in",
                "This connection was started in another browser, or your browser did not send this site's cookie. Start again in this browser, with cookies allowed for this site.".into(),
            ),
            F::Replayed => page(
                StatusCode::BAD_REQUEST,
                "replayed_state",
                "This link was already used",
                "Each link works once. If connecting worked the first time, you are done; otherwise start again.".into(),
            ),
            F::BadRef(_) => page(
                StatusCode::BAD_REQUEST,
                "invalid_ref",
                bad_link,
                format!(
                    "The link's ref is longer than {} characters or holds control characters.",
                    Reference::MAX_CHARS
                ),
            ),
            F::ReturnToNotAllowed => page(
                StatusCode::BAD_REQUEST,
                "return_to_not_allowed",
                bad_link,
                "This link would send you somewhere this site does not trust afterwards, so it was not followed. Use the link from the app you came from.".into(),
            ),
            F::UnsignedLink => page(
                StatusCode::BAD_REQUEST,
                "unsigned_link",
                bad_link,
                "This link is not one the app vouched for. Go back to the app and use the connect button there.".into(),
            ),
            F::InvalidLink => page(
                StatusCode::BAD_REQUEST,
                "invalid_link",
                bad_link,
                "This link was altered or is incomplete. Go back to the app and use the connect button there.".into(),
            ),
            F::ExpiredLink => page(
                StatusCode::BAD_REQUEST,
                "expired_link",
                "This link has expired",
                "Go back to the app and use the connect button there for a fresh link.".into(),
            ),
            F::UsedLink => page(
                StatusCode::BAD_REQUEST,
                "used_link",
                "This link was already used",
                "Each of these links works once, for a limited time. Go back to the app for a fresh one.".into(),
            ),
            F::LinkTooLong => page(
                StatusCode::BAD_REQUEST,
                "link_too_long",
                bad_link,
                "This link carries more than can travel through Notion and back. The app that made it needs to shorten its ref or return address.".into(),
            ),
            F::UnknownFlow => page(
                StatusCode::BAD_REQUEST,
                "unknown_flow",
                bad_link,
                format!("This address does not belong to a connection started in this browser. {start_again}"),
            ),
            F::NotionReported(code) => page(
                StatusCode::BAD_GATEWAY,
                "notion_error",
                "Notion could not complete the connection",
                format!("Notion reported \u{201c}{code}\u{201d}. Nothing was saved. Try again in a moment."),
            ),
            F::Exchange(e) if e.is_invalid_grant() => page(
                StatusCode::BAD_REQUEST,
                "code_rejected",
                "Notion did not accept this authorization",
                "The authorization expired or was already used. Nothing was saved. Start again.".into(),
            ),
            F::Exchange(e) if e.is_invalid_client() => page(
                StatusCode::BAD_GATEWAY,
                "integration_misconfigured",
                "This integration is misconfigured",
                "Notion rejected this integration's credentials, so nothing was saved. The site's operator needs to check its client ID and secret; please try again later.".into(),
            ),
            F::Exchange(NotionError::Timeout(_)) => page(
                StatusCode::GATEWAY_TIMEOUT,
                "notion_timeout",
                "Notion did not answer in time",
                "Nothing was saved. Try again in a moment.".into(),
            ),
            F::Exchange(NotionError::InvalidResponse { .. }) => page(
                StatusCode::BAD_GATEWAY,
                "notion_garbled",
                "Notion's answer could not be understood",
                "Nothing was saved. Try again in a few minutes.".into(),
            ),
            F::Exchange(_) => page(
                StatusCode::BAD_GATEWAY,
                "notion_unavailable",
                "Notion is not available right now",
                "Nothing was saved. Try again in a few minutes.".into(),
            ),
            F::Store(_) | F::Randomness(_) => page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Something went wrong on our side",
                "Nothing was saved. Try again in a few minutes; if it keeps happening, contact this site's operator.".into(),
            ),
        }
    }
}
