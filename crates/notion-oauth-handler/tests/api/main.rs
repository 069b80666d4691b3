//! Integration tests: the real server over HTTP on 127.0.0.1, Notion emulated in-process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// A test binary exports nothing: `pub` marks what its modules share with each other.
#![allow(unreachable_pub)]

mod acme;
mod api_keys;
mod bad_input;
mod binary;
mod browser;
mod cli;
mod connections;
mod deliveries;
mod embed;
mod flow;
mod helpers;
mod hostile;
mod links;
mod metrics;
mod notion_faults;
mod openapi;
mod pages;
mod postgres;
mod processes;
mod proxy;
mod secrets;
mod store;
mod tls;
mod tokens;
