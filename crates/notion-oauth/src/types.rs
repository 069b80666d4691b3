//! What Notion's OAuth endpoints answer, typed but tolerant: fields Notion adds later are kept in
//! `extra` rather than rejected, and fields the reference marks nullable are optional.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};

use crate::secret::{AccessToken, RefreshToken};

/// Identifies one authorization: one user's install of the integration in one workspace.
/// It is the key to upsert a connection by; Notion documents it as a UUID, kept here as text.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(transparent)]
pub struct BotId(String);

/// A Notion workspace id. Not unique per connection: several users of one workspace each get
/// their own bot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(transparent)]
pub struct WorkspaceId(String);

macro_rules! id_impls {
    ($name:ident) => {
        impl $name {
            /// Wraps an id received from Notion or read from storage.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
id_impls!(BotId);
id_impls!(WorkspaceId);

/// Notion's answer to a code exchange or a refresh (both have the same shape).
///
/// Serializing it writes every field except the two tokens, so the non-secret part of the answer
/// can be stored or sent as it came. Its own `Deserialize` reads it field by field in one pass.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    /// The token for API calls.
    #[serde(skip_serializing)]
    pub access_token: AccessToken,
    /// Always `bearer` in practice; `bearer` when missing.
    pub token_type: String,
    /// The token for [`crate::OAuthClient::refresh`]; Notion's schema allows `null`.
    #[serde(skip_serializing)]
    pub refresh_token: Option<RefreshToken>,
    /// The authorization's id.
    pub bot_id: BotId,
    /// The workspace the user installed the integration in.
    pub workspace_id: WorkspaceId,
    /// The workspace's name, if it has one.
    pub workspace_name: Option<String>,
    /// The workspace's icon: usually a URL.
    pub workspace_icon: Option<String>,
    /// Who the bot acts for.
    pub owner: Owner,
    /// The page created from the integration's template, when the user chose to duplicate it.
    pub duplicated_template_id: Option<String>,
    /// Notion's id for this request, for support tickets.
    pub request_id: Option<String>,
    /// Fields this crate does not know, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl<'de> Deserialize<'de> for TokenResponse {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TokenResponseVisitor)
    }
}

/// Reads a [`TokenResponse`] in one pass. serde's `flatten` (for `extra`) first copied the whole
/// answer into an intermediate tree and then read each field out of it again: two passes and
/// a copy of every string, on every code exchange and refresh.
struct TokenResponseVisitor;

impl<'de> serde::de::Visitor<'de> for TokenResponseVisitor {
    type Value = TokenResponse;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a token response object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> Result<TokenResponse, A::Error> {
        use serde::de::Error;
        let mut access_token = None;
        let mut token_type = None;
        let mut refresh_token = None;
        let mut bot_id = None;
        let mut workspace_id = None;
        let mut owner = None;
        let (mut workspace_name, mut workspace_icon) = (None, None);
        let (mut duplicated_template_id, mut request_id) = (None, None);
        let mut extra = Map::new();
        // Each known field once, as a derived `Deserialize` has it.
        fn once<'de, A: serde::de::MapAccess<'de>, T: Deserialize<'de>>(
            map: &mut A,
            slot: &mut Option<T>,
            name: &'static str,
        ) -> Result<(), A::Error> {
            if slot.is_some() {
                return Err(A::Error::duplicate_field(name));
            }
            *slot = Some(map.next_value()?);
            Ok(())
        }
        while let Some(key) = map.next_key::<Field>()? {
            match key {
                Field::AccessToken => once(&mut map, &mut access_token, "access_token")?,
                Field::TokenType => once(&mut map, &mut token_type, "token_type")?,
                Field::RefreshToken => once(&mut map, &mut refresh_token, "refresh_token")?,
                Field::BotId => once(&mut map, &mut bot_id, "bot_id")?,
                Field::WorkspaceId => once(&mut map, &mut workspace_id, "workspace_id")?,
                Field::Owner => once(&mut map, &mut owner, "owner")?,
                Field::WorkspaceName => once(&mut map, &mut workspace_name, "workspace_name")?,
                Field::WorkspaceIcon => once(&mut map, &mut workspace_icon, "workspace_icon")?,
                Field::DuplicatedTemplateId => {
                    once(&mut map, &mut duplicated_template_id, "duplicated_template_id")?;
                }
                Field::RequestId => once(&mut map, &mut request_id, "request_id")?,
                Field::Other(name) => {
                    extra.insert(name, map.next_value()?);
                }
            }
        }
        Ok(TokenResponse {
            access_token: access_token.ok_or_else(|| A::Error::missing_field("access_token"))?,
            token_type: token_type.unwrap_or_else(bearer),
            refresh_token: refresh_token.flatten(),
            bot_id: bot_id.ok_or_else(|| A::Error::missing_field("bot_id"))?,
            workspace_id: workspace_id.ok_or_else(|| A::Error::missing_field("workspace_id"))?,
            workspace_name: workspace_name.and_then(|TextOrNone(text)| text),
            workspace_icon: workspace_icon.and_then(|TextOrNone(text)| text),
            owner: owner.ok_or_else(|| A::Error::missing_field("owner"))?,
            duplicated_template_id: duplicated_template_id.and_then(|TextOrNone(text)| text),
            request_id: request_id.and_then(|TextOrNone(text)| text),
            extra,
        })
    }
}

/// A key of a token response.
enum Field {
    AccessToken,
    TokenType,
    RefreshToken,
    BotId,
    WorkspaceId,
    WorkspaceName,
    WorkspaceIcon,
    Owner,
    DuplicatedTemplateId,
    RequestId,
    /// One this crate does not know, kept in `extra`.
    Other(String),
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Field, E> {
                Ok(match name {
                    "access_token" => Field::AccessToken,
                    "token_type" => Field::TokenType,
                    "refresh_token" => Field::RefreshToken,
                    "bot_id" => Field::BotId,
                    "workspace_id" => Field::WorkspaceId,
                    "workspace_name" => Field::WorkspaceName,
                    "workspace_icon" => Field::WorkspaceIcon,
                    "owner" => Field::Owner,
                    "duplicated_template_id" => Field::DuplicatedTemplateId,
                    "request_id" => Field::RequestId,
                    other => Field::Other(other.to_owned()),
                })
            }
        }
        deserializer.deserialize_identifier(Name)
    }
}

/// Fields that are only shown or recorded must not cost the user a connection: by the time the
/// answer arrives the code is spent, so a value of an unexpected type is dropped, not fatal.
struct TextOrNone(Option<String>);

impl<'de> Deserialize<'de> for TextOrNone {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(TextOrNone(match Value::deserialize(deserializer)? {
            Value::String(text) => Some(text),
            _ => None,
        }))
    }
}

fn bearer() -> String {
    "bearer".to_owned()
}

/// The owner of a connection's bot, in the shapes Notion has used.
#[derive(Clone, Debug, PartialEq)]
pub enum Owner {
    /// `{"type":"user","user":{…}}`: the user who authorized (every public connection since 2021).
    User(User),
    /// `{"type":"workspace","workspace":true}`, or the oldest form `{"workspace":true}`.
    Workspace,
    /// A shape not known to this crate, kept as it came.
    Other(Value),
}

/// A Notion user as the token response describes it: a full person, or only `{object, id}`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct User {
    /// The user's id.
    pub id: String,
    /// The user's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The user's avatar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    /// Present for people; the email only with the "user information including email" capability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<Person>,
    /// Other fields (`object`, `type`, …), kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The person part of a [`User`].
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Person {
    /// The person's email, if the integration may read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl Owner {
    /// The authorizing user, for user-owned bots.
    pub fn user(&self) -> Option<&User> {
        match self {
            Owner::User(user) => Some(user),
            _ => None,
        }
    }

    /// `"user"`, `"workspace"` or `"unknown"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Owner::User(_) => "user",
            Owner::Workspace => "workspace",
            Owner::Other(_) => "unknown",
        }
    }
}

impl<'de> Deserialize<'de> for Owner {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let kind = value.get("type").and_then(Value::as_str);
        match kind {
            // A user we cannot read is kept as it came rather than failing the exchange.
            // Read from the value in place, not from a copy of it: this runs on every exchange.
            Some("user") => Ok(value
                .get("user")
                .and_then(|user| User::deserialize(user).ok())
                .map_or(Owner::Other(value), Owner::User)),
            Some("workspace") => Ok(Owner::Workspace),
            None if value.get("workspace").and_then(Value::as_bool) == Some(true) => {
                Ok(Owner::Workspace)
            }
            _ if value.is_object() => Ok(Owner::Other(value)),
            _ => Err(serde::de::Error::custom("owner is not an object")),
        }
    }
}

impl Serialize for Owner {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Owner::User(user) => {
                serde_json::json!({ "type": "user", "user": user }).serialize(serializer)
            }
            Owner::Workspace => {
                serde_json::json!({ "type": "workspace", "workspace": true }).serialize(serializer)
            }
            Owner::Other(value) => value.serialize(serializer),
        }
    }
}

/// Notion's answer to [`crate::OAuthClient::introspect`].
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Introspection {
    /// Whether the token still works. `false` after a revoke or when the user removed the
    /// connection in Notion (Notion sends no notice of that).
    pub active: bool,
    /// The connection's capabilities, space-separated.
    #[serde(default)]
    pub scope: Option<String>,
    /// When the token was issued, in **milliseconds** since the Unix epoch.
    #[serde(default)]
    pub iat: Option<i64>,
    /// Notion's id for this request.
    #[serde(default)]
    pub request_id: Option<String>,
    /// Fields this crate does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Notion's answer to [`crate::OAuthClient::revoke`].
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Revocation {
    /// Notion's id for this request.
    #[serde(default)]
    pub request_id: Option<String>,
    /// Fields this crate does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What kind of object a connection was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SharedKind {
    /// A page.
    Page,
    /// A database (before `Notion-Version` 2025-09-03, also what holds its rows).
    Database,
    /// A database's data source (2025-09-03 and later).
    DataSource,
}

/// A page's or database's icon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Icon {
    /// An emoji.
    Emoji(String),
    /// An image, external or uploaded to Notion (uploaded ones are signed URLs that expire).
    Image(String),
}

/// A page, database or data source a connection can read, as search lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedObject {
    /// Page, database or data source.
    pub kind: SharedKind,
    /// Notion's id for it.
    pub id: String,
    /// Its title as plain text; empty when it has none.
    pub title: String,
    /// Its icon, if it has one.
    pub icon: Option<Icon>,
    /// Where it opens in Notion.
    pub url: Option<String>,
}

impl SharedObject {
    /// Reads one search result; `None` for anything that is not a page, database or data
    /// source with an id.
    pub(crate) fn read(value: &Value) -> Option<Self> {
        let kind = match value.get("object")?.as_str()? {
            "page" => SharedKind::Page,
            "database" => SharedKind::Database,
            "data_source" => SharedKind::DataSource,
            _ => return None,
        };
        let id = value.get("id")?.as_str()?.to_owned();
        // A page's title is its `title` property (whatever the property is named); a
        // database's and a data source's is a top-level `title`.
        let title = match kind {
            SharedKind::Page => value
                .get("properties")
                .and_then(Value::as_object)
                .and_then(|properties| {
                    properties.values().find(|p| p.get("type") == Some(&json!("title")))
                })
                .and_then(|property| property.get("title")),
            SharedKind::Database | SharedKind::DataSource => value.get("title"),
        };
        let title = title
            .and_then(Value::as_array)
            .map(|parts| parts.iter().filter_map(|part| part.get("plain_text")?.as_str()).collect())
            .unwrap_or_default();
        let icon = value.get("icon").and_then(|icon| match icon.get("type")?.as_str()? {
            "emoji" => Some(Icon::Emoji(icon.get("emoji")?.as_str()?.to_owned())),
            kind @ ("external" | "file") => {
                Some(Icon::Image(icon.get(kind)?.get("url")?.as_str()?.to_owned()))
            }
            _ => None,
        });
        let url = value.get("url").and_then(Value::as_str).map(str::to_owned);
        Some(Self { kind, id, title, icon, url })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const DOCUMENTED: &str = r#"{
      "access_token": "ntn_5557W6V5U4T3210987674821098765432109000001",
      "token_type": "bearer",
      "refresh_token": "nrt_4991090011501Ejc6Xn4sHguI7jZIN449mKe9PRhpMfNK",
      "bot_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
      "workspace_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
      "workspace_name": "Ada's Notion Workspace",
      "workspace_icon": "https://website.domain/images/image.png",
      "owner": {"type": "user", "user": {"object": "user", "id": "5389a034-eb5c-47b5-8a9e-f79c99ef166c",
        "name": "Ada Lovelace", "avatar_url": null, "type": "person", "person": {"email": "ada@example.com"}}},
      "duplicated_template_id": null,
      "request_id": "1c217857-1d3f-4357-aac2-66b6da18424e",
      "brand_new_field": {"kept": true}
    }"#;

    #[test]
    fn the_documented_token_response_parses_and_keeps_unknown_fields() {
        let response: TokenResponse = serde_json::from_str(DOCUMENTED).unwrap();
        assert_eq!(response.bot_id.as_str(), "3c90c3cc-0d44-4b50-8888-8dd25736052a");
        let user = response.owner.user().unwrap();
        assert_eq!(user.person.as_ref().unwrap().email.as_deref(), Some("ada@example.com"));
        assert_eq!(response.extra["brand_new_field"], serde_json::json!({"kept": true}));
        assert!(response.refresh_token.is_some());
    }

    #[test]
    fn serializing_keeps_every_field_but_the_tokens() {
        let response: TokenResponse = serde_json::from_str(DOCUMENTED).unwrap();
        let stored = serde_json::to_string(&response).unwrap();
        assert!(!stored.contains("ntn_") && !stored.contains("nrt_"), "{stored}");
        assert!(stored.contains("brand_new_field") && stored.contains("ada@example.com"));
        assert!(stored.contains("\"duplicated_template_id\":null"));
    }

    #[test]
    fn owner_parses_in_all_three_known_shapes() {
        let workspace: Owner =
            serde_json::from_str(r#"{"type":"workspace","workspace":true}"#).unwrap();
        let oldest: Owner = serde_json::from_str(r#"{"workspace":true}"#).unwrap();
        let partial: Owner =
            serde_json::from_str(r#"{"type":"user","user":{"object":"user","id":"u1"}}"#).unwrap();
        assert_eq!(workspace, Owner::Workspace);
        assert_eq!(oldest, Owner::Workspace);
        assert_eq!(partial.user().unwrap().id, "u1");
        let round_trip: Owner =
            serde_json::from_value(serde_json::to_value(&partial).unwrap()).unwrap();
        assert_eq!(round_trip, partial);
    }

    #[test]
    fn display_fields_of_an_unexpected_type_are_dropped_not_fatal() {
        let body = r#"{"access_token":"ntn_x","bot_id":"b","workspace_id":"w","workspace_name":7,
            "workspace_icon":{"emoji":"x"},"owner":{"type":"user","user":null},"request_id":false}"#;
        let response: TokenResponse = serde_json::from_str(body).unwrap();
        assert!(response.workspace_name.is_none() && response.workspace_icon.is_none());
        assert!(matches!(response.owner, Owner::Other(_)));
        assert!(response.request_id.is_none());
    }

    #[test]
    fn a_known_field_sent_twice_is_refused_and_a_missing_token_type_is_bearer() {
        let minimal = r#"{"access_token":"secret_x","bot_id":"b","workspace_id":"w","owner":{"workspace":true}}"#;
        let response: TokenResponse = serde_json::from_str(minimal).unwrap();
        assert_eq!(response.token_type, "bearer");
        assert!(response.refresh_token.is_none() && response.extra.is_empty());
        // An escaped key is the same key.
        let escaped = minimal.replace("\"bot_id\"", "\"bot\\u005fid\"");
        let response: TokenResponse = serde_json::from_str(&escaped).unwrap();
        assert_eq!(response.bot_id.as_str(), "b");
        // Which of two access tokens would be the real one is not a guess to make.
        let twice = minimal.replace("{", r#"{"access_token":"secret_y","#);
        let error = serde_json::from_str::<TokenResponse>(&twice).unwrap_err();
        assert!(error.to_string().contains("duplicate field `access_token`"), "{error}");
        assert!(serde_json::from_str::<TokenResponse>("[]").is_err());
    }

    #[test]
    fn a_null_refresh_token_and_missing_nullable_fields_are_accepted() {
        let body = r#"{"access_token":"secret_x","token_type":"bearer","refresh_token":null,
            "bot_id":"b","workspace_id":"w","owner":{"workspace":true}}"#;
        let response: TokenResponse = serde_json::from_str(body).unwrap();
        assert!(response.refresh_token.is_none());
        assert!(response.workspace_name.is_none());
    }

    #[test]
    fn search_results_read_as_shared_objects_and_odd_ones_are_left_out() {
        let results = json!([
            { "object": "page", "id": "p1", "url": "https://www.notion.so/p1",
              "icon": { "type": "emoji", "emoji": "📄" },
              "properties": { "Name": { "type": "title",
                  "title": [{ "plain_text": "Road" }, { "plain_text": "map" }] },
                  "Tags": { "type": "multi_select" } } },
            { "object": "data_source", "id": "d1",
              "icon": { "type": "external", "external": { "url": "https://x.test/i.png" } },
              "title": [{ "plain_text": "Tasks" }] },
            { "object": "database", "id": "db1", "title": [], "icon": { "type": "custom_emoji" } },
            { "object": "user", "id": "u1" },
            { "object": "page" },
        ]);
        let read: Vec<SharedObject> =
            results.as_array().unwrap().iter().filter_map(SharedObject::read).collect();
        assert_eq!(read.len(), 3);
        assert_eq!(read[0].title, "Roadmap");
        assert_eq!(read[0].icon, Some(Icon::Emoji("📄".into())));
        assert_eq!(read[0].url.as_deref(), Some("https://www.notion.so/p1"));
        assert_eq!(
            (read[1].kind.clone(), read[1].title.as_str()),
            (SharedKind::DataSource, "Tasks")
        );
        assert_eq!(read[1].icon, Some(Icon::Image("https://x.test/i.png".into())));
        assert_eq!((read[2].title.as_str(), read[2].icon.clone()), ("", None));
    }
}
