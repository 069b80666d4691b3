//! `[[documents]]`: files served as written, such as the privacy policy and terms of use Notion
//! requires of public integrations.

use std::path::Path;

use super::checks::check_base_path;
use super::problems::Problems;
use super::settings::DocumentSettings;

/// Paths the server itself answers; documents may not take them.
const RESERVED_PATHS: [&str; 5] = ["/", "/connect", "/callback", "/healthz", "/readyz"];

/// A document served as is, such as the privacy policy Notion requires of public integrations.
#[derive(Debug, Clone)]
pub struct Document {
    /// Where it is served.
    pub path: String,
    /// The file's bytes, read at start.
    pub body: Vec<u8>,
    /// Its `Content-Type`.
    pub content_type: String,
}

/// Loads every document, noting each problem under `documents[i].field`.
pub(super) fn load_all(
    documents: &[DocumentSettings],
    base_dir: &Path,
    problems: &mut Problems,
) -> Vec<Document> {
    let mut loaded = Vec::new();
    for (index, document) in documents.iter().enumerate() {
        let key = |field: &str| format!("documents[{index}].{field}");
        // One problem per document: when its path is wrong, its file is beside the point.
        let Some(path) = problems.check(&key("path"), check_path(&document.path, &loaded)) else {
            continue;
        };
        let file = base_dir.join(&document.file);
        let body = std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()));
        let Some(body) = problems.check(&key("file"), body) else { continue };
        let content_type = problems.check(&key("content_type"), content_type(document, &file));
        if let Some(content_type) = content_type {
            loaded.push(Document { path, body, content_type });
        }
    }
    loaded
}

/// Where a document is served: a path of its own, not one of the server's, not taken.
fn check_path(path: &str, earlier: &[Document]) -> Result<String, String> {
    let trimmed = path.trim_end_matches('/');
    if !path.starts_with('/') || check_base_path(path).is_err() || trimmed.is_empty() {
        return Err(format!("`{path}` must be a path such as /privacy"));
    }
    if RESERVED_PATHS.contains(&trimmed) || trimmed == "/api" || trimmed.starts_with("/api/") {
        return Err(format!("`{trimmed}` is one of the server's own pages; pick another path"));
    }
    if earlier.iter().any(|d| d.path == trimmed) {
        return Err(format!("`{trimmed}` is served by an earlier document already"));
    }
    Ok(trimmed.to_owned())
}

/// The document's `Content-Type`: as configured, else guessed from the file's extension.
fn content_type(document: &DocumentSettings, file: &Path) -> Result<String, String> {
    let content_type = match &document.content_type {
        Some(content_type) => content_type.clone(),
        None => match file.extension().and_then(|e| e.to_str()) {
            Some("html" | "htm") => "text/html; charset=utf-8".into(),
            Some("txt" | "md") => "text/plain; charset=utf-8".into(),
            Some("pdf") => "application/pdf".into(),
            _ => {
                return Err(format!(
                    "cannot guess the type of {}; set content_type",
                    file.display()
                ));
            }
        },
    };
    if axum::http::HeaderValue::from_str(&content_type).is_err() {
        return Err(format!(
            "`{}` is not a valid Content-Type header value",
            content_type.escape_debug()
        ));
    }
    Ok(content_type)
}
