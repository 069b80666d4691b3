//! The signatures module (`notion_oauth_handler::signatures`): the webhook signature header it
//! makes, and the connect-link signature check on arbitrary signatures. The module has no
//! webhook-header parser (receivers are the apps), so the header's shape is what is checked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use notion_oauth_handler::signatures::{connect_link, connect_link_matches, webhook};
use secrecy::SecretString;

fuzz_target!(|input: (String, i64, String, String, String, String)| {
    let (secret, timestamp, body, reference, return_to, sig) = input;
    let secret = SecretString::from(secret);

    let header = webhook(&secret, timestamp, &body);
    let prefix = format!("t={timestamp},v1=");
    let hex = header.strip_prefix(&prefix).expect("the header starts with t=…,v1=");
    assert!(hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));

    let _ = connect_link_matches(&secret, &reference, &return_to, timestamp, &sig);
    let made = connect_link(&secret, &reference, &return_to, timestamp);
    assert!(connect_link_matches(&secret, &reference, &return_to, timestamp, &made));
});
