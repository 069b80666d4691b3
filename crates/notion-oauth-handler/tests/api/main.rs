//! Integration tests: the real server over HTTP on 127.0.0.1, Notion emulated in-process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bad_input;
mod binary;
mod browser;
mod deliveries;
mod embed;
mod flow;
mod helpers;
mod lifecycle;
mod links;
mod notion_faults;
mod postgres;
mod processes;
mod secrets;
mod store;
