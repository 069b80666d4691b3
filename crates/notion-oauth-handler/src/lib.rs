//! The notion-oauth-handler server: "Add to Notion", encrypted storage of each connection, its
//! token on demand, and delivery of its events to the developer's app.
//!
//! As a library it is what an app embedding the flow needs: [`embed`] builds the flow's router
//! with the app's hooks and view, [`lifecycle`] gives tokens, [`config`] reads and checks the
//! configuration, [`store`] is where everything is kept (and what a custom store implements),
//! [`domain`] names the domain's words, and [`signatures`] makes and checks the two signatures
//! apps deal with. [`Application`] runs the standalone server; [`run`] is its command line.
//!
//! The modules form layers, each using only those below it:
//!
//! 1. leaves: [`domain`], the extension contracts (`hooks`), `templates`, [`vault`],
//!    [`api_keys`], [`signatures`], `crypto`, `telemetry`, `metrics`, `notion` (the Notion
//!    client, counted);
//! 2. [`config`]: plain data;
//! 3. [`store`]: the `Store` trait and its SQL implementation;
//! 4. services, each holding only what it uses: `flow`, `links`, [`lifecycle`], `delivery`,
//!    `rate_limits`;
//! 5. `pages`: what the browser sees;
//! 6. `state`: the request state, one substate per service;
//! 7. `routes`: the HTTP surface;
//! 8. `startup`, `serving`, `tls` and [`embed`]: building and running it all;
//! 9. `cli` and `commands`: the binary's command line.

pub mod api_keys;
mod crypto;
pub mod domain;
mod hooks;
mod metrics;
mod notion;
pub mod signatures;
mod telemetry;
mod templates;
pub mod vault;

pub mod config;

pub mod store;

mod delivery;
mod flow;
pub mod lifecycle;
mod links;
pub mod proxy;
mod rate_limits;

mod pages;

mod state;

mod routes;

mod acme;
pub mod embed;
mod serving;
mod startup;
mod tls;

mod cli;
mod commands;
#[doc(hidden)]
pub mod fuzzing;

pub use cli::Cli;
pub use commands::run;
pub use startup::Application;
