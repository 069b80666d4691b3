//! The endpoints the emulator knows and the bounded log of requests it received.

use std::collections::VecDeque;

/// Keeps memory bounded in a long `dev` session while holding far more than any test sends.
const MAX_RECORDED: usize = 1000;

/// An emulated endpoint, identified by path alone (a wrong method on it is still "to" it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `/v1/oauth/authorize`: the browser leg, consent page and its form.
    Authorize,
    /// `/v1/oauth/token`: code exchange and refresh.
    Token,
    /// `/v1/oauth/introspect`: whether a token is active.
    Introspect,
    /// `/v1/oauth/revoke`: ends a token pair.
    Revoke,
    /// `/v1/users/me`: the bot user behind an access token.
    UsersMe,
    /// `/v1/search`: the pages and data sources shared with the bot.
    Search,
    /// `GET /v1/pages/{id}`.
    Pages,
    /// `GET /v1/databases/{id}`.
    Databases,
    /// `GET /v1/data_sources/{id}`.
    DataSources,
}

impl Endpoint {
    pub(crate) fn from_path(path: &str) -> Option<Self> {
        Some(match path {
            "/v1/oauth/authorize" => Self::Authorize,
            "/v1/oauth/token" => Self::Token,
            "/v1/oauth/introspect" => Self::Introspect,
            "/v1/oauth/revoke" => Self::Revoke,
            "/v1/users/me" => Self::UsersMe,
            "/v1/search" => Self::Search,
            _ if path.starts_with("/v1/pages/") => Self::Pages,
            _ if path.starts_with("/v1/databases/") => Self::Databases,
            _ if path.starts_with("/v1/data_sources/") => Self::DataSources,
            _ => return None,
        })
    }

    /// By its name in `/_mock/` URLs and JSON: `token`, `users_me`, ….
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "authorize" => Self::Authorize,
            "token" => Self::Token,
            "introspect" => Self::Introspect,
            "revoke" => Self::Revoke,
            "users_me" => Self::UsersMe,
            "search" => Self::Search,
            "pages" => Self::Pages,
            "databases" => Self::Databases,
            "data_sources" => Self::DataSources,
            _ => return None,
        })
    }

    /// The OAuth endpoints answer errors in the configured shape; the API always in Notion's.
    pub(crate) fn is_oauth(self) -> bool {
        matches!(self, Self::Authorize | Self::Token | Self::Introspect | Self::Revoke)
    }
}

/// One request as received, before any validation.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RecordedRequest {
    /// The endpoint the path names; `None` for a path the emulator does not serve.
    pub endpoint: Option<Endpoint>,
    /// The HTTP method as sent, e.g. `POST`.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string after `?`, if the URL had one.
    pub query: Option<String>,
    /// Names lowercased, in arrival order; repeated headers appear repeatedly.
    pub headers: Vec<(String, String)>,
    /// Lossy UTF-8 of the body.
    pub body: String,
    /// The `Content-Type` header as sent (lossy UTF-8), if any.
    pub content_type: Option<String>,
    /// The status the emulator answered with; `None` while the answer is still being made.
    /// Lets a test tell how many calls were refused (401) or rate limited (429).
    pub status: Option<u16>,
    /// The request's place in the log, to attach the answer's status to it.
    #[serde(skip)]
    pub(crate) seq: u64,
}

impl RecordedRequest {
    /// First value of the header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
pub(crate) struct RequestLog {
    entries: VecDeque<RecordedRequest>,
    next_seq: u64,
}

impl RequestLog {
    /// Records `request`; the number to give [`RequestLog::answered`].
    pub(crate) fn push(&mut self, mut request: RecordedRequest) -> u64 {
        if self.entries.len() >= MAX_RECORDED {
            self.entries.pop_front();
        }
        self.next_seq += 1;
        request.seq = self.next_seq;
        self.entries.push_back(request);
        self.next_seq
    }

    /// Notes the status request `seq` was answered with (if it is still in the log).
    pub(crate) fn answered(&mut self, seq: u64, status: u16) {
        // Answers come soon after their request: search from the newest.
        if let Some(entry) = self.entries.iter_mut().rev().find(|entry| entry.seq == seq) {
            entry.status = Some(status);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    pub(crate) fn all(&self) -> Vec<RecordedRequest> {
        self.entries.iter().cloned().collect()
    }

    pub(crate) fn to(&self, endpoint: Endpoint) -> Vec<RecordedRequest> {
        self.entries.iter().filter(|r| r.endpoint == Some(endpoint)).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str) -> RecordedRequest {
        RecordedRequest {
            endpoint: Endpoint::from_path(path),
            method: "POST".to_owned(),
            path: path.to_owned(),
            query: None,
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: String::new(),
            content_type: Some("application/json".to_owned()),
            status: None,
            seq: 0,
        }
    }

    #[test]
    fn log_is_bounded_and_filterable() {
        let mut log = RequestLog::default();
        for _ in 0..MAX_RECORDED {
            log.push(request("/v1/oauth/token"));
        }
        log.push(request("/nope"));
        let all = log.all();
        assert_eq!(all.len(), MAX_RECORDED);
        assert_eq!(all.last().map(|r| r.endpoint), Some(None));
        assert_eq!(log.to(Endpoint::Token).len(), MAX_RECORDED - 1);
    }

    #[test]
    fn header_lookup_ignores_case() {
        let r = request("/v1/search");
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(r.header("authorization"), None);
    }
}
