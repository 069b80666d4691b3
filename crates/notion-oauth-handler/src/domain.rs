//! The domain's words as types: a connection's status, what happened to it, the event an app
//! hears of it, a delivery's status, and the app's `ref`. Each word has one spelling, given
//! once here: the database and the wire keep text, and every conversion goes through the
//! `as_str` / [`FromStr`] pair of its type.

use std::fmt;
use std::str::FromStr;

pub use notion_oauth::{BotId, WorkspaceId};

/// A text that is not one of a word's spellings: from the database, a query or a config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a known {what}; use {expected}")]
pub struct UnknownWord {
    what: &'static str,
    /// The text, cut short and stripped of control characters, fit for a message.
    text: String,
    expected: String,
}

/// Declares a closed set of words with their one spelling each, and its conversions: text both
/// ways, serde as that text, and the OpenAPI schema listing every spelling.
macro_rules! words {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $( $(#[$variant_meta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$variant_meta])* $variant, )+
        }

        impl $name {
            /// Every word, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The one spelling, as stored and sent.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownWord;

            fn from_str(text: &str) -> Result<Self, UnknownWord> {
                match text {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(UnknownWord {
                        what: $what,
                        text: text.chars().filter(|c| !c.is_control()).take(64).collect(),
                        expected: Self::ALL.iter().map(|w| w.as_str()).collect::<Vec<_>>().join(", "),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some(Self::ALL.iter().map(|w| w.as_str())))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

words! {
    /// Where a connection stands.
    pub enum ConnectionStatus ("connection status") {
        /// Its tokens work (as far as anyone knows).
        Active => "active",
        /// Notion refused its refresh token: the user has to connect again.
        NeedsReauth => "needs_reauth",
        /// Revoked here, or removed by the user in Notion: its tokens are gone.
        Revoked => "revoked",
    }
}

words! {
    /// One kind of thing that happened to a connection, as its history records it.
    pub enum HistoryKind ("history kind") {
        /// A user authorized the bot for the first time.
        Connected => "connected",
        /// The user authorized the bot again: a new pair replaced the old one.
        Reconnected => "reconnected",
        /// The pair was refreshed.
        Refreshed => "refreshed",
        /// A refresh failed.
        RefreshFailed => "refresh_failed",
        /// A refresh started and never finished (its process stopped).
        RefreshInterrupted => "refresh_interrupted",
        /// Notion refused the refresh token: the user has to connect again.
        NeedsReauth => "needs_reauth",
        /// Notion was asked whether the token still works.
        Checked => "checked",
        /// The tokens were revoked or found dead.
        Revoked => "revoked",
    }
}

impl HistoryKind {
    /// The event an app hears for this kind, if it hears of it at all.
    pub fn event_type(self) -> Option<EventType> {
        Some(match self {
            Self::Connected => EventType::Created,
            Self::Reconnected => EventType::Updated,
            Self::Refreshed => EventType::Refreshed,
            Self::NeedsReauth => EventType::NeedsReauth,
            Self::Revoked => EventType::Revoked,
            Self::RefreshFailed | Self::RefreshInterrupted | Self::Checked => return None,
        })
    }
}

words! {
    /// An event delivered to the app: to webhooks, the command hook and in-process hooks.
    pub enum EventType ("event type") {
        /// A user connected for the first time.
        Created => "connection.created",
        /// A user connected again (a new token pair).
        Updated => "connection.updated",
        /// The token pair was refreshed.
        Refreshed => "connection.refreshed",
        /// The user has to connect again.
        NeedsReauth => "connection.needs_reauth",
        /// The connection's tokens are gone.
        Revoked => "connection.revoked",
        /// A user cancelled on Notion's page.
        Denied => "connection.denied",
    }
}

words! {
    /// What storing a granted connection did.
    pub enum Upserted ("flow outcome") {
        /// The bot is new.
        Created => "created",
        /// The bot was known: its pair was replaced.
        Reauthorized => "reauthorized",
    }
}

impl Upserted {
    /// The history entry it makes.
    pub fn history_kind(self) -> HistoryKind {
        match self {
            Self::Created => HistoryKind::Connected,
            Self::Reauthorized => HistoryKind::Reconnected,
        }
    }
}

words! {
    /// Where a delivery of one event to one target stands.
    pub enum DeliveryStatus ("delivery status") {
        /// Waiting for its first attempt or a retry.
        Pending => "pending",
        /// The target accepted it.
        Delivered => "delivered",
        /// Every attempt failed; an operator can redeliver it.
        Dead => "dead",
    }
}

/// Where a flow's `ref` came from: a link the app vouched for (signed, or made for one use), or a
/// plain `?ref=` anyone can type. Apps hear which, with each denial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RefSource {
    /// A signed or one-time link.
    Vouched,
    /// A plain query parameter, or no `ref` at all.
    #[default]
    Plain,
}

/// The app's own reference for the user who starts a flow (`ref` on `/connect`), stored with the
/// connection: at most [`Reference::MAX_CHARS`] characters, none of them control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference(String);

/// Why a `ref` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ref must be at most {} characters, without control characters", Reference::MAX_CHARS)]
pub struct InvalidReference;

impl Reference {
    /// The longest `ref` accepted.
    pub const MAX_CHARS: usize = 256;

    /// Checks a `ref`.
    ///
    /// # Errors
    /// Too long, or holding control characters (which would let it forge lines in logs and in
    /// the link signature's message).
    pub fn parse(text: impl Into<String>) -> Result<Self, InvalidReference> {
        let text = text.into();
        if text.chars().count() > Self::MAX_CHARS || text.chars().any(char::is_control) {
            return Err(InvalidReference);
        }
        Ok(Self(text))
    }

    /// The reference as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The reference as an owned text.
    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_word_round_trips_through_its_one_spelling() {
        for status in ConnectionStatus::ALL {
            assert_eq!(status.as_str().parse::<ConnectionStatus>().unwrap(), *status);
        }
        for kind in HistoryKind::ALL {
            assert_eq!(kind.as_str().parse::<HistoryKind>().unwrap(), *kind);
        }
        for event in EventType::ALL {
            let json = serde_json::to_string(event).unwrap();
            assert_eq!(serde_json::from_str::<EventType>(&json).unwrap(), *event);
        }
        let unknown = "bogus\n".parse::<DeliveryStatus>().unwrap_err().to_string();
        assert_eq!(unknown, "`bogus` is not a known delivery status; use pending, delivered, dead");
    }

    #[test]
    fn history_that_apps_hear_of_maps_to_its_event() {
        let heard: Vec<_> = HistoryKind::ALL.iter().filter_map(|k| k.event_type()).collect();
        assert_eq!(heard.len(), 5, "every event but denied comes from history");
        assert!(!heard.contains(&EventType::Denied));
        assert_eq!(Upserted::Reauthorized.history_kind().event_type(), Some(EventType::Updated));
    }

    #[test]
    fn a_reference_is_short_and_printable() {
        assert!(Reference::parse("user-1").is_ok());
        assert!(Reference::parse("é".repeat(256)).is_ok());
        assert!(Reference::parse("a".repeat(257)).is_err());
        assert!(Reference::parse("a\nb").is_err());
    }
}
