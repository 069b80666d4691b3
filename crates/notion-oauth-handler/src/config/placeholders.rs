//! Values `init` writes for the operator to replace. A configuration still holding them is valid
//! TOML with every key set, so only these checks tell that it cannot work yet.

use super::Config;
use super::problems::Problem;

/// The public URL's host in the file `init` writes.
const PLACEHOLDER_HOST: &str = "notion.example.com";

/// The line at the top of each sample page `init` writes (`init/*.html`).
const SAMPLE_MARK: &[u8] = b"Sample text written by <code>notion-oauth-handler init</code>";

/// Values left as `init` wrote them that no working deployment has: Notion knows no
/// integration with an all-zero client id, and nobody reaches this server at
/// notion.example.com.
pub(super) fn placeholders(client_id: Option<&str>, public_url: Option<&str>) -> Vec<Problem> {
    let mut found = Vec::new();
    if client_id.is_some_and(|id| !id.is_empty() && id.chars().all(|c| c == '0' || c == '-')) {
        found.push(Problem {
            key: "notion.client_id".into(),
            message: "is still the placeholder `init` wrote: copy the OAuth client ID from your integration's page in Notion's Developer portal (or set NOTION_CLIENT_ID)".into(),
        });
    }
    let host = public_url.and_then(|url| url::Url::parse(url.trim()).ok());
    if host.as_ref().and_then(url::Url::host_str) == Some(PLACEHOLDER_HOST) {
        found.push(Problem {
            key: "server.public_url".into(),
            message: format!("is still the placeholder `init` wrote (https://{PLACEHOLDER_HOST}): set the https address people reach this server at"),
        });
    }
    found
}

impl Config {
    /// What [`placeholders`] finds in this configuration.
    pub fn placeholders(&self) -> Vec<Problem> {
        placeholders(Some(self.notion.client_id.as_str()), Some(self.public_url.as_str()))
    }

    /// Sample pages from `init` served unedited: the server works, but they are not the
    /// operator's own policy and terms, which Notion asks public integrations to publish.
    pub fn unedited_samples(&self) -> Vec<Problem> {
        self.documents
            .iter()
            .enumerate()
            .filter(|(_, document)| {
                document.body.windows(SAMPLE_MARK.len()).any(|window| window == SAMPLE_MARK)
            })
            .map(|(index, document)| Problem {
                key: format!("documents[{index}]"),
                message: format!(
                    "{} is still the sample text `init` wrote: replace it with your own",
                    document.path
                ),
            })
            .collect()
    }
}
