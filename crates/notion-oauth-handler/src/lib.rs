//! The notion-oauth-handler server: "Add to Notion", encrypted storage of each connection.
//!
//! `main.rs` only wires the command line to these modules.

pub mod api_keys;
pub mod cli;
pub mod commands;
pub mod config;
mod crypto;
pub mod delivery;
pub mod embed;
pub mod flow;
mod hooks;
pub mod lifecycle;
pub mod links;
pub mod pages;
pub mod routes;
pub mod signatures;
pub mod startup;
pub mod store;
pub mod telemetry;
mod templates;
pub mod vault;
