//! The browser leg, `GET`/`POST /v1/oauth/authorize`: validation, consent page, redirect with code or error.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Extension, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::Response;

use crate::middleware::MissingCodeFault;
use crate::pages::{ConsentPage, Picker, PickerItem};
use crate::store::CodeGrant;
use crate::{Emulator, EmulatorConfig, random};

const DEFAULT_USER: &str = "Ada Lovelace";
/// Used only if the configuration lists no workspace at all.
const FALLBACK_WORKSPACE: &str = "Acme Corp";
/// Names become ids and emails; a cap keeps a pasted novel from doing so.
const MAX_NAME_CHARS: usize = 100;
/// The authorize parameters a consent form carries back; unknown ones (`scope`, `code_challenge`) are dropped.
const CARRIED_PARAMS: [&str; 7] =
    ["client_id", "response_type", "owner", "redirect_uri", "state", "mock_email", "mock_owner"];

type Params = Vec<(String, String)>;

fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn parse_params(raw: &[u8]) -> Params {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

/// A request that passed validation: where to send the browser back.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Validated {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) redirect_uri_sent: bool,
    pub(crate) state: Option<String>,
}

/// Checks what Notion checks before showing its consent screen; the error text goes on an HTML page,
/// never into a redirect, because the redirect target itself may be what is wrong (§1.3).
pub(crate) fn validate(params: &Params, config: &EmulatorConfig) -> Result<Validated, String> {
    let client_id = match param(params, "client_id") {
        None | Some("") => return Err("Missing client_id.".to_owned()),
        Some(id) if id != config.client_id => {
            return Err(format!("Invalid client_id: no integration with id `{id}`."));
        }
        Some(id) => id.to_owned(),
    };
    let (redirect_uri, redirect_uri_sent) = match param(params, "redirect_uri") {
        Some(uri) if config.redirect_uris.iter().any(|r| r == uri) => (uri.to_owned(), true),
        Some(uri) => {
            return Err(format!(
                "redirect_uri missing or invalid: `{uri}` is not one of the integration's redirect URIs."
            ));
        }
        None => match config.redirect_uris.as_slice() {
            [only] => (only.clone(), false),
            _ => {
                return Err(
                    "redirect_uri missing or invalid: the integration does not have exactly one redirect URI, so the URL must name one."
                        .to_owned(),
                );
            }
        },
    };
    if param(params, "response_type") != Some("code") {
        return Err("Invalid response_type: it must be `code`.".to_owned());
    }
    // `owner` is documented as required and always `user`, but Notion's changelog says
    // user-level tokens are made "regardless of the owner parameter", and the best-known
    // tutorial and several providers never send it: accepted missing or any value, unless the
    // emulator is told to hold clients to the documentation.
    if config.require_owner && param(params, "owner") != Some("user") {
        return Err("Invalid owner: it must be `user`.".to_owned());
    }
    Ok(Validated {
        client_id,
        redirect_uri,
        redirect_uri_sent,
        state: param(params, "state").map(str::to_owned),
    })
}

/// The user's choices on (or instead of) the consent screen.
struct Choice {
    user: String,
    workspace: String,
    template: bool,
    pages: PagePick,
    /// Whether the user was named, which keeps ids stable across flows.
    pinned: bool,
    /// `mock_email=0`: no email in the answer.
    email: bool,
    /// `mock_owner=workspace`: a legacy workspace-level install.
    workspace_owned: bool,
}

/// What the user shares on the page picker.
enum PagePick {
    /// Everything in the workspace: the picker's default, and a test's when it says nothing.
    All,
    /// These titles (`mock_pages=Roadmap 2026,Tasks`; `mock_pages=none` is none).
    Titles(Vec<String>),
    /// The ids the consent form's checkboxes sent.
    Ids(Vec<String>),
}

impl PagePick {
    fn from_query(value: Option<&str>) -> Self {
        match value.map(str::trim) {
            None | Some("all" | "") => Self::All,
            Some("none") => Self::Titles(Vec::new()),
            Some(titles) => Self::Titles(
                titles.split(',').map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect(),
            ),
        }
    }

    /// The ids picked among `objects`, or the title that is not there.
    fn resolve(
        &self,
        objects: &[crate::content::Object],
        workspace: &str,
    ) -> Result<Vec<uuid::Uuid>, String> {
        match self {
            Self::All => Ok(objects.iter().map(|o| o.id).collect()),
            Self::Ids(ids) => Ok(objects
                .iter()
                .filter(|o| ids.iter().any(|id| *id == o.id.to_string()))
                .map(|o| o.id)
                .collect()),
            Self::Titles(titles) => titles
                .iter()
                .map(|title| {
                    objects
                        .iter()
                        .find(|o| o.title.eq_ignore_ascii_case(title))
                        .map(|o| o.id)
                        .ok_or_else(|| format!("No page or database titled `{title}` in the workspace `{workspace}`."))
                })
                .collect(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Decision {
    Allow,
    Deny,
}

fn parse_decision(value: Option<&str>) -> Result<Option<Decision>, String> {
    match value {
        None => Ok(None),
        Some("allow") => Ok(Some(Decision::Allow)),
        Some("deny") => Ok(Some(Decision::Deny)),
        Some(other) => Err(format!("Invalid decision `{other}`: it must be `allow` or `deny`.")),
    }
}

/// `mock_email=0` (or false, no, none): the owner comes without an email.
fn wants_email(params: &Params) -> bool {
    !matches!(param(params, "mock_email"), Some("0" | "false" | "no" | "none"))
}

fn is_truthy(value: Option<&str>) -> bool {
    matches!(value, Some("1" | "true" | "on" | "yes"))
}

fn name_or(value: Option<&str>, default: &str) -> String {
    match value.map(str::trim) {
        Some(v) if !v.is_empty() => v.chars().take(MAX_NAME_CHARS).collect(),
        _ => default.to_owned(),
    }
}

fn default_workspace(config: &EmulatorConfig) -> &str {
    config.workspaces.first().map_or(FALLBACK_WORKSPACE, String::as_str)
}

/// `base` with `pairs` appended to its query, keeping any query it already has.
pub(crate) fn redirect_url(base: &str, pairs: &[(&str, &str)]) -> Option<String> {
    let mut url = url::Url::parse(base).ok()?;
    if !pairs.is_empty() {
        let mut query = url.query_pairs_mut();
        for (name, value) in pairs {
            query.append_pair(name, value);
        }
    }
    Some(url.into())
}

/// Notion answers the browser leg with 302 Found (not axum's default 303).
fn found(location: &str) -> Option<Response> {
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, location)
        .header(header::CACHE_CONTROL, "no-store")
        .body(axum::body::Body::empty())
        .ok()
}

impl Emulator {
    fn authorize_error(&self, message: &str) -> Response {
        self.pages().error(StatusCode::BAD_REQUEST, message)
    }

    /// Sends the browser back to the client with `pairs`, or shows an error page if that is impossible.
    fn redirect_back(&self, valid: &Validated, pairs: &[(&str, &str)]) -> Response {
        redirect_url(&valid.redirect_uri, pairs)
            .and_then(|location| found(&location))
            .unwrap_or_else(|| {
                self.authorize_error("The registered redirect_uri is not a valid absolute URL.")
            })
    }

    fn complete(&self, valid: &Validated, decision: Decision, choice: Choice) -> Response {
        let state = valid.state.as_deref();
        match decision {
            Decision::Allow => {
                let code: Result<String, String> = self.with(|s| {
                    // Bench mode exchanges any code, so remembering this one would only grow.
                    if s.config.bench {
                        return Ok(random::uuid().to_string());
                    }
                    if !s.content.admits(&choice.workspace) {
                        return Err(format!(
                            "The emulator holds {} workspaces already; use one of them.",
                            crate::content::MAX_WORKSPACES
                        ));
                    }
                    let objects = s.content.objects(&choice.workspace);
                    let shared = choice.pages.resolve(objects, &choice.workspace)?;
                    let ttl = s.config.code_ttl;
                    let now = Instant::now();
                    Ok(s.store.issue_code(CodeGrant {
                        client_id: valid.client_id.clone(),
                        user_name: choice.user,
                        workspace_name: choice.workspace,
                        template: choice.template,
                        redirect_uri: valid.redirect_uri.clone(),
                        redirect_uri_sent: valid.redirect_uri_sent,
                        // A TTL too large to add means "never expires" in practice.
                        expires_at: now
                            .checked_add(ttl)
                            .or_else(|| now.checked_add(Duration::from_secs(86_400 * 365)))
                            .unwrap_or(now),
                        shared,
                        pinned: choice.pinned,
                        email: choice.email,
                        workspace_owned: choice.workspace_owned,
                    }))
                });
                let code = match code {
                    Ok(code) => code,
                    Err(message) => return self.authorize_error(&message),
                };
                let mut pairs = vec![("code", code.as_str())];
                pairs.extend(state.map(|s| ("state", s)));
                self.redirect_back(valid, &pairs)
            }
            Decision::Deny => {
                let echo = self.with(|s| s.config.echo_state_on_deny);
                let mut pairs = vec![("error", "access_denied")];
                match (echo, state) {
                    (true, Some(state)) => pairs.push(("state", state)),
                    // Notion's doc example literally ends in `&state=` (§1.3).
                    _ => pairs.push(("state", "")),
                }
                self.redirect_back(valid, &pairs)
            }
        }
    }

    /// "Missing fields" on the browser leg: back to the client with `state` but no `code`.
    fn redirect_without_code(&self, valid: &Validated) -> Response {
        let pairs: Vec<(&str, &str)> =
            valid.state.as_deref().map(|s| ("state", s)).into_iter().collect();
        self.redirect_back(valid, &pairs)
    }
}

/// What the consent page and its form submission both do first: validate every parameter (an
/// invalid one gets Notion's error page, never a redirect), then apply a missing-code fault.
fn checked(
    emulator: &Emulator,
    params: &Params,
    missing_code_fault: bool,
) -> Result<(Validated, EmulatorConfig), Box<Response>> {
    let config = emulator.with(|s| s.config.clone());
    let valid = validate(params, &config)
        .map_err(|message| Box::new(emulator.authorize_error(&message)))?;
    if missing_code_fault {
        return Err(Box::new(emulator.redirect_without_code(&valid)));
    }
    Ok((valid, config))
}

pub(crate) async fn authorize_get(
    State(emulator): State<Emulator>,
    fault: Option<Extension<MissingCodeFault>>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = parse_params(query.unwrap_or_default().as_bytes());
    let (valid, config) = match checked(&emulator, &params, fault.is_some()) {
        Ok(checked) => checked,
        Err(response) => return *response,
    };
    // Test hooks: Notion ignores unknown parameters, so tests append these to a real authorize URL.
    let decision = match parse_decision(param(&params, "mock_decision")) {
        Ok(decision) => decision,
        Err(message) => return emulator.authorize_error(&message),
    };
    let choice = Choice {
        user: name_or(param(&params, "mock_user"), DEFAULT_USER),
        workspace: name_or(param(&params, "mock_workspace"), default_workspace(&config)),
        template: is_truthy(param(&params, "mock_template")),
        pages: PagePick::from_query(param(&params, "mock_pages")),
        pinned: param(&params, "mock_user").is_some(),
        email: wants_email(&params),
        workspace_owned: param(&params, "mock_owner") == Some("workspace"),
    };
    let decision = match decision {
        Some(decision) => decision,
        None if config.auto_approve || config.bench => Decision::Allow,
        None => {
            let page = consent_page(&emulator, &params, &valid, &config, choice);
            return emulator.pages().consent(&page);
        }
    };
    emulator.complete(&valid, decision, choice)
}

fn consent_page(
    emulator: &Emulator,
    params: &Params,
    valid: &Validated,
    config: &EmulatorConfig,
    choice: Choice,
) -> ConsentPage {
    let mut workspaces = config.workspaces.clone();
    if !workspaces.contains(&choice.workspace) {
        workspaces.push(choice.workspace.clone());
    }
    // One list per workspace; the form keeps only the chosen workspace's ticks. A test's
    // `mock_pages` ticks the chosen workspace's list; the others are all ticked.
    let pickers = emulator.with(|s| {
        let admitted: Vec<&String> =
            workspaces.iter().filter(|workspace| s.content.admits(workspace)).collect();
        admitted
            .into_iter()
            .map(|workspace| {
                let objects = s.content.objects(workspace);
                let ticked = if *workspace == choice.workspace {
                    choice.pages.resolve(objects, workspace).unwrap_or_default()
                } else {
                    objects.iter().map(|o| o.id).collect()
                };
                Picker {
                    workspace: workspace.clone(),
                    objects: objects
                        .iter()
                        .map(|o| PickerItem {
                            id: o.id.to_string(),
                            title: o.title.clone(),
                            database: o.kind == crate::content::Kind::Database,
                            checked: ticked.contains(&o.id),
                        })
                        .collect(),
                }
            })
            .collect()
    });
    ConsentPage {
        pickers,
        client_id: valid.client_id.clone(),
        integration_name: config.integration_name.clone(),
        redirect_uri: valid.redirect_uri.clone(),
        hidden: CARRIED_PARAMS
            .iter()
            .filter_map(|&name| param(params, name).map(|v| (name.to_owned(), v.to_owned())))
            .collect(),
        user: choice.user,
        workspaces,
        workspace: choice.workspace,
        template: choice.template,
    }
}

/// The consent form's submission. Every carried parameter is validated again: hidden fields are
/// just more user input.
pub(crate) async fn authorize_post(
    State(emulator): State<Emulator>,
    fault: Option<Extension<MissingCodeFault>>,
    body: Bytes,
) -> Response {
    let params = parse_params(&body);
    let (valid, config) = match checked(&emulator, &params, fault.is_some()) {
        Ok(checked) => checked,
        Err(response) => return *response,
    };
    let decision = match parse_decision(param(&params, "decision")) {
        Ok(Some(decision)) => decision,
        Ok(None) => {
            return emulator.authorize_error("Missing decision: press Allow access or Cancel.");
        }
        Err(message) => return emulator.authorize_error(&message),
    };
    // A form from this page says which pages were ticked (none is none); one without the
    // picker (an older page, a hand-made POST) shares everything.
    let pages = if param(&params, "pages_shown").is_some() {
        PagePick::Ids(params.iter().filter(|(k, _)| k == "page").map(|(_, v)| v.clone()).collect())
    } else {
        PagePick::All
    };
    let choice = Choice {
        user: name_or(param(&params, "user"), DEFAULT_USER),
        workspace: name_or(param(&params, "workspace"), default_workspace(&config)),
        template: is_truthy(param(&params, "mock_template")),
        pages,
        // A name typed on the page is an account: the same one next time.
        pinned: true,
        email: wants_email(&params),
        workspace_owned: param(&params, "mock_owner") == Some("workspace"),
    };
    emulator.complete(&valid, decision, choice)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn config(uris: &[&str]) -> EmulatorConfig {
        EmulatorConfig {
            client_id: "cid".to_owned(),
            redirect_uris: uris.iter().map(|u| (*u).to_owned()).collect(),
            ..EmulatorConfig::default()
        }
    }

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    const OK: [(&str, &str); 3] =
        [("client_id", "cid"), ("response_type", "code"), ("owner", "user")];

    fn with(extra: &[(&str, &str)]) -> Params {
        let mut p = params(&OK);
        p.extend(params(extra));
        p
    }

    #[test]
    fn omitted_redirect_uri_uses_the_only_registered_one() {
        let valid = validate(&with(&[("state", "s")]), &config(&["http://localhost/cb"])).unwrap();
        assert_eq!(valid.redirect_uri, "http://localhost/cb");
        assert!(!valid.redirect_uri_sent);
        assert_eq!(valid.state.as_deref(), Some("s"));
    }

    #[test]
    fn omitted_redirect_uri_with_several_registered_is_an_error() {
        let cfg = config(&["http://localhost/a", "http://localhost/b"]);
        assert!(validate(&with(&[]), &cfg).is_err());
        let valid = validate(&with(&[("redirect_uri", "http://localhost/b")]), &cfg).unwrap();
        assert!(valid.redirect_uri_sent);
    }

    #[test]
    fn invalid_requests_are_rejected() {
        let cfg = config(&["http://localhost/cb"]);
        assert!(validate(&with(&[("redirect_uri", "http://localhost/other")]), &cfg).is_err());
        assert!(validate(&with(&[]), &config(&[])).is_err());
        let mut p = with(&[]);
        p[0].1 = "other".to_owned();
        assert!(validate(&p, &cfg).is_err());
        let mut p = with(&[]);
        p[1].1 = "token".to_owned();
        assert!(validate(&p, &cfg).is_err());
        // `owner` missing or any value still gets a user-level token, as Notion does.
        let mut p = with(&[]);
        p[2].1 = "workspace".to_owned();
        assert!(validate(&p, &cfg).is_ok());
        let mut p = with(&[]);
        p.remove(2);
        assert!(validate(&p, &cfg).is_ok());
        // Unknown parameters such as PKCE's are ignored, as Notion does.
        assert!(validate(&with(&[("code_challenge", "x"), ("scope", "y")]), &cfg).is_ok());
    }

    #[test]
    fn redirect_keeps_existing_query_and_encodes() {
        assert_eq!(
            redirect_url("http://localhost:3000/cb?x=1", &[("code", "c"), ("state", "a b&c")])
                .unwrap(),
            "http://localhost:3000/cb?x=1&code=c&state=a+b%26c"
        );
        assert_eq!(
            redirect_url("https://app.example/cb", &[("error", "access_denied"), ("state", "")])
                .unwrap(),
            "https://app.example/cb?error=access_denied&state="
        );
        assert_eq!(redirect_url("https://app.example/cb", &[]).unwrap(), "https://app.example/cb");
        assert!(redirect_url("not a url", &[]).is_none());
    }

    #[test]
    fn names_are_trimmed_defaulted_and_capped() {
        assert_eq!(name_or(Some("  Bob "), "x"), "Bob");
        assert_eq!(name_or(Some("   "), "x"), "x");
        assert_eq!(name_or(None, "x"), "x");
        assert_eq!(name_or(Some(&"a".repeat(500)), "x").len(), MAX_NAME_CHARS);
    }
}
