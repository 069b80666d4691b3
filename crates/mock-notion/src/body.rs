//! Request bodies as a field map, from JSON (documented) or form encoding (accepted in practice, §2.2).

use serde_json::{Map, Value};

use crate::errors::ApiError;

/// Top-level fields of a request body; form values become JSON strings.
#[derive(Debug, Default)]
pub(crate) struct Fields(Map<String, Value>);

pub(crate) fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Fields, ApiError> {
    let essence =
        content_type.and_then(|ct| ct.split(';').next()).map(|ct| ct.trim().to_ascii_lowercase());
    // An empty body reads as `{}`, as a JSON body parser does, so field validation names the field.
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Fields::default());
    }
    match essence.as_deref() {
        // requests sends a pre-encoded form body (oauthlib's `prepare_request_body`, as the
        // Django tutorial does) with no Content-Type at all, and Notion takes it: JSON first,
        // then a form.
        None => parse_json(body).or_else(|not_json| parse_form(body).ok_or(not_json)),
        Some("application/json") => parse_json(body),
        Some(ct) if ct.ends_with("+json") => parse_json(body),
        Some("application/x-www-form-urlencoded") => Ok(Fields(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect(),
        )),
        Some(other) => Err(ApiError::invalid_request(format!(
            "Unsupported Content-Type `{other}`: send application/json."
        ))),
    }
}

/// A form body with at least one `name=value` field and nothing that is not form encoding.
fn parse_form(body: &[u8]) -> Option<Fields> {
    let text = std::str::from_utf8(body).ok()?.trim();
    let form_like =
        text.split('&').all(|pair| pair.split_once('=').is_some_and(|(k, _)| !k.is_empty()))
            && !text.contains(char::is_whitespace);
    form_like.then(|| {
        Fields(
            url::form_urlencoded::parse(text.as_bytes())
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect(),
        )
    })
}

fn parse_json(body: &[u8]) -> Result<Fields, ApiError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(Fields(map)),
        Ok(_) => {
            Err(ApiError::invalid_request("body failed validation: body should be an object."))
        }
        Err(_) => Err(ApiError::invalid_json()),
    }
}

impl Fields {
    /// A field as sent.
    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// The names of the fields sent.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// A string field; absent and `null` read as missing, any other type is a validation error.
    pub(crate) fn str(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(ApiError::invalid_request(format!(
                "body failed validation: body.{name} should be a string, instead was `{other}`."
            ))),
        }
    }

    pub(crate) fn required_str(&self, name: &str) -> Result<&str, ApiError> {
        self.str(name)?.ok_or_else(|| ApiError::missing_field(name))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn json_and_form_give_the_same_fields() {
        let json = parse(
            Some("application/json; charset=utf-8"),
            br#"{"grant_type":"authorization_code","code":"c"}"#,
        )
        .unwrap();
        let form = parse(
            Some("application/x-www-form-urlencoded"),
            b"grant_type=authorization_code&code=c",
        )
        .unwrap();
        for f in [json, form] {
            assert_eq!(f.str("grant_type").unwrap(), Some("authorization_code"));
            assert_eq!(f.required_str("code").unwrap(), "c");
            assert_eq!(f.str("redirect_uri").unwrap(), None);
        }
    }

    #[test]
    fn bad_bodies() {
        assert_eq!(parse(Some("application/json"), b"{nope").unwrap_err().code, "invalid_json");
        assert_eq!(parse(Some("text/plain"), b"a").unwrap_err().code, "invalid_request");
        assert_eq!(parse(Some("application/json"), b"[1]").unwrap_err().code, "invalid_request");
        let fields = parse(None, br#"{"code":5}"#).unwrap();
        assert!(fields.str("code").is_err());
        assert_eq!(
            fields.required_str("token").unwrap_err().message,
            "body failed validation: body.token should be defined, instead was `undefined`."
        );
        assert!(parse(Some("text/plain"), b"").is_ok());
    }

    #[test]
    fn a_form_without_content_type_is_read_and_anything_else_is_still_not_json() {
        let fields = parse(None, b"grant_type=authorization_code&code=c&client_id=x").unwrap();
        assert_eq!(fields.required_str("code").unwrap(), "c");
        for garbage in [&b"{nope"[..], b"just words", b"=novalue", b"a=1&&b=2"] {
            assert_eq!(parse(None, garbage).unwrap_err().code, "invalid_json", "{garbage:?}");
        }
    }
}
