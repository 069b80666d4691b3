//! What is wrong with a configuration, in one shape: the key, and what to do about it.

/// One thing wrong with the configuration: which key, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key as written in the file, e.g. `webhooks[0].secret`.
    pub key: String,
    /// What is wrong and how to fix it; never the value of a secret.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Every problem found, so an operator fixes them in one go.
#[derive(Debug, thiserror::Error)]
#[error("the configuration has {}:\n{}", count(.0.len(), "problem"), render(.0))]
pub struct ConfigError(pub Vec<Problem>);

/// `word`, or its plural for any `n` but 1 (the words used here take an `s`).
pub(crate) fn plural(n: usize, word: &str) -> String {
    if n == 1 { word.to_owned() } else { format!("{word}s") }
}

/// `1 problem`, `2 problems`.
pub(crate) fn count(n: usize, word: &str) -> String {
    format!("{n} {}", plural(n, word))
}

fn render(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n")
}

/// The problems found so far. Every check adds to it and goes on, so that `check` reports them
/// all at once.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<Problem>);

impl Problems {
    /// Notes a problem with `key`.
    pub(crate) fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem { key: key.into(), message: message.into() });
    }

    /// The checked value, or `None` with its problem noted under `key`.
    pub(crate) fn check<T>(&mut self, key: &str, checked: Result<T, String>) -> Option<T> {
        checked.map_err(|message| self.add(key, message)).ok()
    }

    /// `value`, if nothing was found wrong.
    pub(crate) fn or_value<T>(self, value: Option<T>) -> Result<T, ConfigError> {
        match value {
            Some(value) if self.0.is_empty() => Ok(value),
            _ => Err(ConfigError(self.0)),
        }
    }
}
