//! The scenarios: what each one asks of which system, and what it is compared with.

use std::fmt;

/// A system under test, each its own process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum System {
    /// The bare axum "hello" server.
    Hello,
    /// notion-oauth-handler on SQLite.
    Sqlite,
    /// notion-oauth-handler on PostgreSQL.
    Postgres,
    /// The PyPI package notion-oauth-handler 0.1.3.
    Python,
}

impl System {
    pub(crate) fn label(self) -> &'static str {
        match self {
            System::Hello => "hello (axum)",
            System::Sqlite => "ours, SQLite",
            System::Postgres => "ours, PostgreSQL",
            System::Python => "Python 0.1.3",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Scenario {
    Hello,
    Connect,
    Token,
    Denied,
    Callback,
    Flow,
    PythonCallback,
    PythonDenied,
    CallbackPg,
    FlowPg,
}

impl Scenario {
    /// Every scenario, in the order a round runs them.
    pub(crate) const ALL: [Scenario; 10] = [
        Scenario::Hello,
        Scenario::Connect,
        Scenario::Token,
        Scenario::Denied,
        Scenario::Callback,
        Scenario::Flow,
        Scenario::PythonCallback,
        Scenario::PythonDenied,
        Scenario::CallbackPg,
        Scenario::FlowPg,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Scenario::Hello => "hello",
            Scenario::Connect => "connect",
            Scenario::Token => "token",
            Scenario::Denied => "denied",
            Scenario::Callback => "callback",
            Scenario::Flow => "flow",
            Scenario::PythonCallback => "python-callback",
            Scenario::PythonDenied => "python-denied",
            Scenario::CallbackPg => "callback-pg",
            Scenario::FlowPg => "flow-pg",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name.trim())
    }

    pub(crate) fn system(self) -> System {
        match self {
            Scenario::Hello => System::Hello,
            Scenario::Connect
            | Scenario::Token
            | Scenario::Denied
            | Scenario::Callback
            | Scenario::Flow => System::Sqlite,
            Scenario::PythonCallback | Scenario::PythonDenied => System::Python,
            Scenario::CallbackPg | Scenario::FlowPg => System::Postgres,
        }
    }

    /// A flow is two requests, so its rate is counted in flows, not requests.
    pub(crate) fn is_flow(self) -> bool {
        matches!(self, Scenario::Flow | Scenario::FlowPg)
    }

    /// What this scenario's rate is divided by: the ceiling for what does no exchange, the
    /// Python package for what does the same job as it.
    pub(crate) fn baselines(self) -> &'static [Scenario] {
        match self {
            Scenario::Connect | Scenario::Token => &[Scenario::Hello],
            Scenario::Denied => &[Scenario::Hello, Scenario::PythonDenied],
            Scenario::Callback | Scenario::Flow | Scenario::CallbackPg | Scenario::FlowPg => {
                &[Scenario::PythonCallback]
            }
            Scenario::Hello | Scenario::PythonCallback | Scenario::PythonDenied => &[],
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, not `write_str`, so progress lines can align names with `{:<16}`.
        f.pad(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for scenario in Scenario::ALL {
            assert_eq!(Scenario::parse(scenario.name()), Some(scenario));
        }
        assert_eq!(Scenario::parse("nope"), None);
    }
}
