//! Parsing of `Authorization` headers: HTTP Basic client credentials and Bearer access tokens.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Splits `Authorization` into (scheme, credentials); schemes compare case-insensitively (RFC 9110).
fn authorization<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (got, rest) = value.split_once(' ')?;
    got.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// `client_id:client_secret` from `Authorization: Basic …`, as the SDK builds it: raw values, not
/// form-encoded first (§2.1).
pub(crate) fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    parse_basic(authorization(headers, "Basic")?)
}

fn parse_basic(encoded: &str) -> Option<(String, String)> {
    let decoded = String::from_utf8(STANDARD.decode(encoded).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    authorization(headers, "Bearer").filter(|t| !t.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn basic_round_trip() {
        let encoded = STANDARD.encode("id-1:sec:ret");
        assert_eq!(
            basic(&headers(&format!("Basic {encoded}"))),
            Some(("id-1".to_owned(), "sec:ret".to_owned()))
        );
        assert_eq!(
            basic(&headers(&format!("basic  {encoded}"))),
            Some(("id-1".to_owned(), "sec:ret".to_owned()))
        );
    }

    #[test]
    fn basic_rejects_garbage() {
        assert_eq!(basic(&HeaderMap::new()), None);
        assert_eq!(basic(&headers("Basic !!!")), None);
        assert_eq!(basic(&headers(&format!("Basic {}", STANDARD.encode("nocolon")))), None);
        assert_eq!(basic(&headers(&format!("Bearer {}", STANDARD.encode("a:b")))), None);
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(&headers("Bearer ntn_abc")), Some("ntn_abc"));
        assert_eq!(bearer(&headers("bearer ntn_abc")), Some("ntn_abc"));
        assert_eq!(bearer(&headers("Bearer ")), None);
        assert_eq!(bearer(&headers("Basic abc")), None);
    }
}
