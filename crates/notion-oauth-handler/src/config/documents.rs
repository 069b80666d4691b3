//! `[[documents]]`: files served as written, such as the privacy policy and terms of use Notion
//! requires of public integrations.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::Problems;
use super::checks::check_base_path;

/// Paths the server itself answers; documents may not take them.
const RESERVED_PATHS: [&str; 5] = ["/", "/connect", "/callback", "/healthz", "/readyz"];

/// One `[[documents]]` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentSettings {
    /// Where it is served, e.g. `/privacy`.
    pub path: String,
    /// The file, relative to the configuration file's folder.
    pub file: PathBuf,
    /// Its type; guessed from the file's extension when absent.
    pub content_type: Option<String>,
}

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
        match load_document(document, base_dir, &loaded) {
            Ok(document) => loaded.push(document),
            Err((field, message)) => problems.add(format!("documents[{index}].{field}"), message),
        }
    }
    loaded
}

fn load_document(
    document: &DocumentSettings,
    base_dir: &Path,
    earlier: &[Document],
) -> Result<Document, (&'static str, String)> {
    let path = document.path.trim_end_matches('/');
    if !document.path.starts_with('/')
        || check_base_path(&document.path).is_err()
        || path.is_empty()
    {
        return Err(("path", format!("`{}` must be a path such as /privacy", document.path)));
    }
    if RESERVED_PATHS.contains(&path) || path == "/api" || path.starts_with("/api/") {
        return Err((
            "path",
            format!("`{path}` is one of the server's own pages; pick another path"),
        ));
    }
    if earlier.iter().any(|d| d.path == path) {
        return Err(("path", format!("`{path}` is served by an earlier document already")));
    }
    let file = base_dir.join(&document.file);
    let body = std::fs::read(&file)
        .map_err(|e| ("file", format!("cannot read {}: {e}", file.display())))?;
    let content_type = match &document.content_type {
        Some(content_type) => content_type.clone(),
        None => match file.extension().and_then(|e| e.to_str()) {
            Some("html" | "htm") => "text/html; charset=utf-8".into(),
            Some("txt" | "md") => "text/plain; charset=utf-8".into(),
            Some("pdf") => "application/pdf".into(),
            _ => {
                return Err((
                    "content_type",
                    format!("cannot guess the type of {}; set content_type", file.display()),
                ));
            }
        },
    };
    if axum::http::HeaderValue::from_str(&content_type).is_err() {
        return Err((
            "content_type",
            format!("`{}` is not a valid Content-Type header value", content_type.escape_debug()),
        ));
    }
    Ok(Document { path: path.to_owned(), body, content_type })
}
