//! Signed webhook calls (see [`crate::signatures`] for the signature).

use secrecy::SecretString;
use url::Url;

use crate::signatures::{WEBHOOK_SIGNATURE_HEADER, webhook as sign};

use crate::store::{Delivery, now};

/// One POST; any 2xx is success.
pub async fn send(
    client: &reqwest::Client,
    url: &Url,
    secret: &SecretString,
    delivery: &Delivery,
    body: &str,
) -> Result<(), String> {
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
        // No URL in the message: it may carry a secret path segment or query.
        .map_err(|e| {
            if e.is_timeout() {
                "the receiver did not answer in time".to_owned()
            } else {
                format!("could not reach the receiver: {}", e.without_url())
            }
        })?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the receiver answered HTTP {}", status.as_u16()))
    }
}
