//! Logging: readable lines for people, JSON for log pipelines, both on stderr.

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub(crate) enum LogFormat {
    /// One readable line per event.
    #[default]
    Pretty,
    /// One JSON object per event, for log pipelines.
    Json,
}

/// Installs the global subscriber. `RUST_LOG` overrides the default filter; the default keeps
/// the database driver quiet, since statement logs say nothing an operator needs.
pub(crate) fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let colour = wants_colour(
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    // A second init (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Pretty => builder.compact().try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Colour codes are for a person at a terminal: in a file or a pipe they are noise. `NO_COLOR`
/// (any value but empty, as no-color.org has it) turns them off there too.
fn wants_colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(std::ffi::OsStr::is_empty)
}

/// An error with its causes, for a log line: `error: cause: cause's cause`. A cause whose words
/// the error already shows (an `"… failed: {0}"` message) is not repeated.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shown = self.0.to_string();
        f.write_str(&shown)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            let words = cause.to_string();
            if !shown.contains(&words) {
                write!(f, ": {words}")?;
                shown = words;
            }
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer failed: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("outer failed")]
    struct Hides(#[source] Repeats);

    #[test]
    fn colour_only_on_a_terminal_and_never_with_no_color() {
        use std::ffi::OsStr;
        assert!(wants_colour(true, None));
        assert!(wants_colour(true, Some(OsStr::new(""))));
        assert!(!wants_colour(true, Some(OsStr::new("1"))));
        assert!(!wants_colour(false, None));
    }

    #[test]
    fn a_chain_shows_every_cause_once() {
        let inner = || std::io::Error::other("disk full");
        assert_eq!(Chain(&Repeats(inner())).to_string(), "outer failed: disk full");
        assert_eq!(
            Chain(&Hides(Repeats(inner()))).to_string(),
            "outer failed: outer failed: disk full"
        );
    }
}
