//! What each emulated workspace holds: pages and databases (each database with one data
//! source), a default set or your own from a file, and the objects a bot was given on the
//! consent page's picker. Search and the page and database endpoints read only those.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::random;

/// What every workspace holds unless a content file says otherwise: 25 objects, so that small
/// page sizes paginate.
const DEFAULT_PAGES: [&str; 22] = [
    "Getting Started",
    "Meeting Notes",
    "Roadmap 2026",
    "Team Wiki",
    "Onboarding Checklist",
    "Product Specs",
    "Design Reviews",
    "Q3 Planning",
    "Retrospectives",
    "Engineering Handbook",
    "Customer Interviews",
    "Release Notes",
    "Hiring Plan",
    "Brand Guidelines",
    "Incident Reports",
    "OKRs",
    "Reading Notes",
    "Travel Plans",
    "Recipes",
    "Weekly Review",
    "Ideas Inbox",
    "Archive",
];
const DEFAULT_DATABASES: [&str; 3] = ["Tasks", "Reading List", "Bug Tracker"];

/// A content file: `[[workspaces]]` with `name`, `pages` (titles) and `databases` (titles).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentFile {
    /// One entry per workspace; a workspace not listed gets the default set.
    pub workspaces: Vec<WorkspaceContent>,
}

/// What one workspace holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceContent {
    /// The workspace's name, as on the consent page.
    pub name: String,
    /// Page titles.
    #[serde(default)]
    pub pages: Vec<String>,
    /// Database titles.
    #[serde(default)]
    pub databases: Vec<String>,
    /// Whether the workspace has an icon (`workspace_icon` a URL) or not (`null`).
    #[serde(default = "has_icon_by_default")]
    pub icon: bool,
}

fn has_icon_by_default() -> bool {
    true
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Page,
    Database,
}

/// One page or database.
#[derive(Clone, Debug)]
pub(crate) struct Object {
    pub(crate) id: Uuid,
    /// The database's one data source (API versions from 2025-09-03 search data sources).
    pub(crate) data_source_id: Option<Uuid>,
    pub(crate) kind: Kind,
    pub(crate) title: String,
    /// Seconds since the epoch.
    created: i64,
    edited: i64,
}

/// Every workspace's objects, made on first use from the file's list or the default set.
#[derive(Default)]
pub(crate) struct Content {
    given: HashMap<String, WorkspaceContent>,
    made: HashMap<String, Vec<Object>>,
}

/// The most workspaces given objects at once (see [`Content::admits`]).
pub(crate) const MAX_WORKSPACES: usize = 1000;

/// 2026-01-01T00:00:00Z: objects are dated after it, a day apart, so sorting is stable.
const EPOCH: i64 = 1_767_225_600;

impl Content {
    pub(crate) fn new(file: Option<&ContentFile>) -> Self {
        let given = file
            .map(|f| f.workspaces.iter().map(|w| (w.name.clone(), w.clone())).collect())
            .unwrap_or_default();
        Self { given, made: HashMap::new() }
    }

    /// The workspace's objects, newest edit first.
    pub(crate) fn objects(&mut self, workspace: &str) -> &[Object] {
        let given = self.given.get(workspace);
        self.made.entry(workspace.to_owned()).or_insert_with(|| {
            let (pages, databases): (Vec<String>, Vec<String>) = match given {
                Some(content) => (content.pages.clone(), content.databases.clone()),
                None => (
                    DEFAULT_PAGES.iter().map(|t| (*t).to_owned()).collect(),
                    DEFAULT_DATABASES.iter().map(|t| (*t).to_owned()).collect(),
                ),
            };
            let kinds = pages.into_iter().map(|t| (Kind::Page, t));
            let all = kinds.chain(databases.into_iter().map(|t| (Kind::Database, t)));
            let mut made: Vec<Object> = Vec::new();
            for (index, (kind, title)) in all.enumerate() {
                let mut next = object(workspace, kind, title, index);
                // Two objects of one title still get two ids: a cursor names one object.
                let mut copy = 1u32;
                while made.iter().any(|o| o.id == next.id) {
                    copy += 1;
                    let tag = format!("copy {copy}");
                    next.id = random::stable_uuid(&["page", workspace, &next.title, &tag]);
                    next.data_source_id = next.data_source_id.map(|_| {
                        random::stable_uuid(&["data source", workspace, &next.title, &tag])
                    });
                }
                made.push(next);
            }
            made
        })
    }

    /// Whether `workspace` has (or may get) objects: every named one up to [`MAX_WORKSPACES`],
    /// so that test URLs naming new workspaces cannot grow the emulator without end.
    pub(crate) fn admits(&self, workspace: &str) -> bool {
        self.made.contains_key(workspace)
            || self.given.contains_key(workspace)
            || self.made.len() < MAX_WORKSPACES
    }

    /// Whether the workspace has an icon: as its file says, else all but the default
    /// "Personal" workspace, so that both answers are seen.
    pub(crate) fn has_icon(&self, workspace: &str) -> bool {
        self.given.get(workspace).map_or(workspace != "Personal", |w| w.icon)
    }

    /// A new page in `workspace`: the copy of the integration's template a user chose.
    pub(crate) fn duplicate_template(&mut self, workspace: &str) -> Uuid {
        let count = self.objects(workspace).len();
        let mut copy =
            object(workspace, Kind::Page, "Integration template (copy)".to_owned(), count);
        copy.id = random::uuid();
        let id = copy.id;
        self.made.entry(workspace.to_owned()).or_default().insert(0, copy);
        id
    }

    /// The object `id` (a page, database or data source id) if it is in `workspace`.
    pub(crate) fn find(&mut self, workspace: &str, id: Uuid) -> Option<Object> {
        self.objects(workspace).iter().find(|o| o.id == id || o.data_source_id == Some(id)).cloned()
    }
}

fn object(workspace: &str, kind: Kind, title: String, index: usize) -> Object {
    let tag = match kind {
        Kind::Page => "page",
        Kind::Database => "database",
    };
    let id = random::stable_uuid(&[tag, workspace, &title]);
    let data_source_id =
        (kind == Kind::Database).then(|| random::stable_uuid(&["data source", workspace, &title]));
    let day = i64::try_from(index).unwrap_or(0) * 86_400;
    Object { id, data_source_id, kind, title, created: EPOCH + day / 2, edited: EPOCH + day }
}

/// Whether an API version speaks of data sources (2025-09-03 and later).
pub(crate) fn has_data_sources(version: &str) -> bool {
    version >= "2025-09-03"
}

fn time(seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

fn rich_text(text: &str) -> Value {
    json!([{
        "type": "text",
        "text": { "content": text, "link": null },
        "annotations": { "bold": false, "italic": false, "strikethrough": false,
                         "underline": false, "code": false, "color": "default" },
        "plain_text": text,
        "href": null,
    }])
}

fn url(title: &str, id: Uuid) -> String {
    let slug: String = title
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    format!("https://www.notion.so/{slug}-{}", id.simple())
}

/// An emoji for an object, the same every time for the same title, so pages that list what
/// was shared have icons to show as they do with real workspaces.
fn icon(object: &str, title: &str) -> &'static str {
    const PAGES: [&str; 8] = ["📄", "🚀", "📘", "🎯", "🗺️", "📝", "💡", "📊"];
    const DATABASES: [&str; 3] = ["🗂️", "📋", "🗃️"];
    let choices: &[&str] = if object == "page" { &PAGES } else { &DATABASES };
    let spread = title.bytes().fold(0usize, |sum, b| sum.wrapping_mul(31).wrapping_add(b.into()));
    choices[spread % choices.len()]
}

impl Object {
    fn common(&self, object: &str, id: Uuid, user: Uuid) -> Value {
        json!({
            "object": object,
            "id": id,
            "created_time": time(self.created),
            "last_edited_time": time(self.edited),
            "created_by": { "object": "user", "id": user },
            "last_edited_by": { "object": "user", "id": user },
            "icon": { "type": "emoji", "emoji": icon(object, &self.title) },
            "cover": null,
            "archived": false,
            "in_trash": false,
            "url": url(&self.title, self.id),
            "public_url": null,
        })
    }

    /// The page object of `GET /v1/pages/{id}` and of search results.
    pub(crate) fn page_json(&self, user: Uuid) -> Value {
        let mut page = self.common("page", self.id, user);
        if let Some(map) = page.as_object_mut() {
            map.insert("parent".to_owned(), json!({ "type": "workspace", "workspace": true }));
            map.insert(
                "properties".to_owned(),
                json!({ "title": { "id": "title", "type": "title", "title": rich_text(&self.title) } }),
            );
        }
        page
    }

    /// The database object; from 2025-09-03 it lists its data sources instead of properties.
    pub(crate) fn database_json(&self, user: Uuid, version: &str) -> Value {
        let mut database = self.common("database", self.id, user);
        if let Some(map) = database.as_object_mut() {
            map.insert("parent".to_owned(), json!({ "type": "workspace", "workspace": true }));
            map.insert("title".to_owned(), rich_text(&self.title));
            map.insert("description".to_owned(), json!([]));
            map.insert("is_inline".to_owned(), json!(false));
            if has_data_sources(version) {
                let source = json!([{ "id": self.data_source_id, "name": self.title }]);
                map.insert("data_sources".to_owned(), source);
            } else {
                map.insert("properties".to_owned(), name_property());
            }
        }
        database
    }

    /// The data source object (2025-09-03 and later).
    pub(crate) fn data_source_json(&self, user: Uuid) -> Value {
        let id = self.data_source_id.unwrap_or(self.id);
        let mut source = self.common("data_source", id, user);
        if let Some(map) = source.as_object_mut() {
            map.insert(
                "parent".to_owned(),
                json!({ "type": "database_id", "database_id": self.id }),
            );
            map.insert(
                "database_parent".to_owned(),
                json!({ "type": "workspace", "workspace": true }),
            );
            map.insert("title".to_owned(), rich_text(&self.title));
            map.insert("description".to_owned(), json!([]));
            map.insert("properties".to_owned(), name_property());
        }
        source
    }

    pub(crate) fn edited(&self) -> i64 {
        self.edited
    }
}

fn name_property() -> Value {
    json!({ "Name": { "id": "title", "name": "Name", "type": "title", "title": {} } })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn workspaces_get_the_default_set_or_their_own_with_stable_ids() {
        let file = ContentFile {
            workspaces: vec![WorkspaceContent {
                name: "Mine".into(),
                pages: vec!["Only page".into()],
                databases: vec![],
                icon: false,
            }],
        };
        let mut content = Content::new(Some(&file));
        assert_eq!(content.objects("Mine").len(), 1);
        assert_eq!(content.objects("Acme Corp").len(), 25);
        let id = content.objects("Acme Corp")[0].id;
        assert_eq!(Content::new(None).objects("Acme Corp")[0].id, id);
        assert_ne!(content.objects("Personal")[0].id, id, "another workspace, other ids");
        let database = content
            .objects("Acme Corp")
            .iter()
            .find(|o| o.kind == Kind::Database)
            .cloned()
            .unwrap();
        let source = database.data_source_id.unwrap();
        assert_eq!(content.find("Acme Corp", source).unwrap().id, database.id);
        assert!(content.find("Personal", database.id).is_none());
        // Two pages of one title are two objects.
        let twins = ContentFile {
            workspaces: vec![WorkspaceContent {
                name: "Twins".into(),
                pages: vec!["A".into(), "A".into()],
                databases: vec![],
                icon: true,
            }],
        };
        let mut content = Content::new(Some(&twins));
        let ids: Vec<Uuid> = content.objects("Twins").iter().map(|o| o.id).collect();
        assert_ne!(ids[0], ids[1]);
    }

    #[test]
    fn objects_look_like_notions() {
        let mut content = Content::new(None);
        let page = content.objects("Acme Corp")[0].clone();
        let user = Uuid::nil();
        let json = page.page_json(user);
        assert_eq!(json["object"], "page");
        assert_eq!(json["properties"]["title"]["title"][0]["plain_text"], "Getting Started");
        assert_eq!(json["created_time"], "2026-01-01T00:00:00Z");
        assert!(
            json["url"].as_str().unwrap().starts_with("https://www.notion.so/Getting-Started-")
        );
        let database = content.objects("Acme Corp").last().cloned().unwrap();
        assert!(database.database_json(user, "2026-03-11")["data_sources"].is_array());
        assert!(database.database_json(user, "2022-06-28")["properties"].is_object());
        assert_eq!(database.data_source_json(user)["parent"]["database_id"], json!(database.id));
    }
}
