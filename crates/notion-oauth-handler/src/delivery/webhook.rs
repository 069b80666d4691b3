//! Signed webhook calls (see [`crate::signatures`] for the signature).

use secrecy::SecretString;
use url::Url;

use crate::signatures::{WEBHOOK_SIGNATURE_HEADER, webhook as sign};
use crate::store::{Delivery, now};

/// Why a webhook call failed. No URL in the words: it may carry a secret path segment or query.
#[derive(Debug, thiserror::Error)]
pub(super) enum WebhookError {
    #[error("the receiver did not answer in time")]
    Timeout,
    #[error("could not reach the receiver: {0}")]
    Unreachable(#[source] reqwest::Error),
    #[error("the receiver answered HTTP {0}")]
    Status(u16),
}

/// One POST; any 2xx is success.
pub(super) async fn send(
    client: &reqwest::Client,
    url: &Url,
    secret: &SecretString,
    delivery: &Delivery,
    body: &str,
) -> Result<(), WebhookError> {
    let response = client
        .post(url.clone())
        .header("content-type", "application/json")
        .header(WEBHOOK_SIGNATURE_HEADER, sign(secret, now(), body))
        .header("Notion-OAuth-Event-Id", &delivery.event_id)
        .header("Notion-OAuth-Event-Type", &delivery.event_type)
        .header("Notion-OAuth-Delivery-Attempt", (delivery.attempts + 1).to_string())
        .body(body.to_owned())
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                WebhookError::Timeout
            } else {
                WebhookError::Unreachable(e.without_url())
            }
        })?;
    let status = response.status();
    if status.is_success() { Ok(()) } else { Err(WebhookError::Status(status.as_u16())) }
}
