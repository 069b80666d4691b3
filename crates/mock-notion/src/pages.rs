//! HTML pages (consent screen, authorize error) rendered with minijinja, HTML-autoescaped.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::value::Serde;
use minijinja::{Environment, Value, context};
use serde::Serialize;

/// What the consent screen shows and carries back in its form.
#[derive(Debug, Serialize)]
pub(crate) struct ConsentPage {
    pub(crate) client_id: String,
    pub(crate) integration_name: Option<String>,
    pub(crate) redirect_uri: String,
    /// Original authorize parameters echoed as hidden fields; the POST validates them again.
    pub(crate) hidden: Vec<(String, String)>,
    pub(crate) user: String,
    pub(crate) workspaces: Vec<String>,
    pub(crate) workspace: String,
    pub(crate) template: bool,
    /// Each workspace's pages and databases, to tick the ones shared.
    pub(crate) pickers: Vec<Picker>,
}

/// The page picker of one workspace.
#[derive(Debug, Serialize)]
pub(crate) struct Picker {
    pub(crate) workspace: String,
    pub(crate) objects: Vec<PickerItem>,
}

#[derive(Debug, Serialize)]
pub(crate) struct PickerItem {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) database: bool,
    pub(crate) checked: bool,
}

pub(crate) struct Pages {
    env: Environment<'static>,
}

impl Pages {
    pub(crate) fn new() -> Self {
        let mut env = Environment::new();
        for (name, source) in [
            ("base.html", include_str!("../templates/base.html")),
            ("consent.html", include_str!("../templates/consent.html")),
            ("error.html", include_str!("../templates/error.html")),
        ] {
            // The sources are compiled in and covered by tests; a broken one surfaces at render time.
            if let Err(err) = env.add_template(name, source) {
                tracing::error!(template = name, %err, "mock-notion template does not parse");
            }
        }
        Self { env }
    }

    pub(crate) fn consent(&self, page: &ConsentPage) -> Response {
        self.render(StatusCode::OK, "consent.html", Value::from(Serde(page)))
    }

    pub(crate) fn error(&self, status: StatusCode, message: &str) -> Response {
        self.render(status, "error.html", context! { message, status => status.as_u16() })
    }

    fn render(&self, status: StatusCode, name: &str, ctx: Value) -> Response {
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => (
                status,
                [
                    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                html,
            )
                .into_response(),
            Err(err) => {
                tracing::error!(template = name, %err, "mock-notion template failed to render");
                (StatusCode::INTERNAL_SERVER_ERROR, "Notion emulator: page template error")
                    .into_response()
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use axum::body::to_bytes;

    use super::*;

    async fn text(response: Response) -> String {
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn consent_page_has_stable_ids_and_escapes() {
        let page = ConsentPage {
            client_id: "cid".to_owned(),
            integration_name: None,
            redirect_uri: "http://localhost/cb?a=1&b=<2>".to_owned(),
            hidden: vec![("state".to_owned(), "\"><script>".to_owned())],
            user: "Ada Lovelace".to_owned(),
            workspaces: vec!["Acme Corp".to_owned(), "Personal".to_owned()],
            workspace: "Personal".to_owned(),
            template: false,
            pickers: vec![Picker {
                workspace: "Personal".to_owned(),
                objects: vec![PickerItem {
                    id: "1f0c".to_owned(),
                    title: "<b>Plans</b>".to_owned(),
                    database: true,
                    checked: true,
                }],
            }],
        };
        let response = Pages::new().consent(&page);
        assert_eq!(response.status(), StatusCode::OK);
        let html = text(response).await;
        for needle in [
            r#"<form id="consent""#,
            r#"id="user" name="user" value="Ada Lovelace""#,
            r#"<select id="workspace" name="workspace">"#,
            r#"<option value="Personal" selected>"#,
            r#"id="allow" name="decision" value="allow""#,
            r#"id="cancel" name="decision" value="deny""#,
            r#"<input type="checkbox" name="page" value="1f0c" checked> &lt;b&gt;Plans"#,
            "(database)",
            r#"name="pages_shown""#,
            "Notion emulator",
        ] {
            assert!(html.contains(needle), "missing {needle}");
        }
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;2&gt;"));
    }

    #[tokio::test]
    async fn error_page() {
        let response = Pages::new().error(StatusCode::BAD_REQUEST, "Invalid <client_id>");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let html = text(response).await;
        assert!(html.contains("Invalid &lt;client_id&gt;"));
        assert!(html.contains("HTTP 400"));
    }
}
