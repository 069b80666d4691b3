//! The `/callback` query-string parser (`CallbackParams::parse`), on arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    notion_oauth_handler::fuzzing::callback_query(input);
});
