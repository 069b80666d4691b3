//! Reading a TOML file and the environment into [`Settings`]. Each section is read on its own,
//! so that a value of the wrong type in one hides nothing in the others, and keys that are not
//! settings are collected (each with the key that was probably meant) instead of stopping the
//! reading at the first.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Value};
use serde::de::DeserializeOwned;

use super::problems::{ConfigError, Problem, plural};
use super::settings::Settings;

/// What was read, and what was wrong with it.
pub(crate) struct Read {
    /// Sections that could not be read are left at their defaults.
    pub(crate) settings: Settings,
    /// Unknown keys and values of the wrong type.
    pub(crate) problems: Vec<Problem>,
    /// Sections that could not be read: checking their defaults would report what is not so.
    pub(crate) unreadable: Vec<String>,
}

impl Read {
    /// Whether a problem found checking the settings is about a section that could not be read.
    pub(crate) fn is_about_unreadable(&self, problem: &Problem) -> bool {
        self.unreadable.iter().any(|section| {
            problem.key.strip_prefix(section.as_str()).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with('.') || rest.starts_with('[')
            })
        })
    }
}

/// Reads `path` (if given) and the environment into [`Settings`].
///
/// # Errors
/// Unreadable TOML, unknown keys and wrong types, each as a [`Problem`].
pub fn load_settings(path: Option<&Path>) -> Result<Settings, ConfigError> {
    let read = read_settings(path)?;
    if read.problems.is_empty() { Ok(read.settings) } else { Err(ConfigError(read.problems)) }
}

/// Reads `path` (if given) and the environment, noting every problem; an error only when
/// nothing can be read at all (no such file, or broken TOML).
pub(crate) fn read_settings(path: Option<&Path>) -> Result<Read, ConfigError> {
    let mut figment = Figment::new();
    if let Some(path) = path {
        if path.is_dir() {
            return Err(ConfigError(vec![Problem {
                key: "--config".into(),
                message: format!("{} is a folder; name the TOML file in it", path.display()),
            }]));
        }
        if !path.exists() {
            return Err(ConfigError(vec![Problem {
                key: "--config".into(),
                message: format!(
                    "{} does not exist; create one with `notion-oauth-handler init`",
                    path.display()
                ),
            }]));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    let figment = figment
        .merge(Env::raw().only(&["NOTION_CLIENT_ID"]).map(|_| "notion.client_id".into()))
        .merge(Env::raw().only(&["NOTION_CLIENT_SECRET"]).map(|_| "notion.client_secret".into()))
        .merge(Env::raw().only(&["NOH_MASTER_KEY"]).map(|_| "security.master_key".into()))
        // Only NOH_SECTION__KEY names are settings, so NOH_MASTER_KEY and NOH_LOG_FORMAT are not
        // mistaken for unknown top-level keys.
        .merge(Env::prefixed("NOH_").filter(|key| key.as_str().contains("__")).split("__"));
    let tree: Dict = figment.extract().map_err(|error| {
        let file = path.map(|path| path.display().to_string());
        let problems = error.into_iter().map(|error| describe_load_error(error, None));
        // A file that cannot be read at all is named as the key, said once.
        ConfigError(
            problems
                .map(|mut problem| {
                    if let (true, Some(file)) = (problem.key == "(file)", &file) {
                        let suffix = format!(" (in {file})");
                        problem.message = problem.message.trim_end_matches(&suffix).to_owned();
                        problem.key.clone_from(file);
                    }
                    problem
                })
                .collect(),
        )
    })?;
    let mut reader =
        Reader { figment: &figment, tree: &tree, problems: Vec::new(), unreadable: Vec::new() };
    reader.unknown_sections();
    // Every field named here, so a new section cannot be forgotten.
    let settings = Settings {
        server: reader.table("server"),
        notion: reader.table("notion"),
        storage: reader.table("storage"),
        security: reader.table("security"),
        lifecycle: reader.table("lifecycle"),
        documents: reader.list("documents"),
        webhooks: reader.list("webhooks"),
        command_hook: reader.optional("command_hook"),
        delivery: reader.table("delivery"),
        connect: reader.table("connect"),
        pages: reader.table("pages"),
        branding: reader.table("branding"),
        proxy: reader.table("proxy"),
        rate_limit: reader.table("rate_limit"),
        tls: reader.table("tls"),
        acme: reader.optional("acme"),
    };
    Ok(Read { settings, problems: reader.problems, unreadable: reader.unreadable })
}

struct Reader<'a> {
    figment: &'a Figment,
    tree: &'a Dict,
    problems: Vec<Problem>,
    unreadable: Vec<String>,
}

impl Reader<'_> {
    fn table<T: DeserializeOwned + Default>(&mut self, name: &str) -> T {
        self.optional(name).unwrap_or_default()
    }

    fn optional<T: DeserializeOwned>(&mut self, name: &str) -> Option<T> {
        if let Value::Dict(_, dict) = self.tree.get(name)? {
            self.unknown_keys(name, dict, fields_of::<T>());
        }
        self.extract(name)
    }

    fn list<T: DeserializeOwned>(&mut self, name: &str) -> Vec<T> {
        let Some(value) = self.tree.get(name) else { return Vec::new() };
        if let Value::Array(_, items) = value {
            for (index, item) in items.iter().enumerate() {
                if let Value::Dict(_, dict) = item {
                    self.unknown_keys(&format!("{name}[{index}]"), dict, fields_of::<T>());
                }
            }
        }
        self.extract(name).unwrap_or_default()
    }

    fn extract<T: DeserializeOwned>(&mut self, name: &str) -> Option<T> {
        match self.figment.extract_inner::<T>(name) {
            Ok(value) => Some(value),
            Err(errors) => {
                let first =
                    errors.clone().into_iter().next().and_then(|error| first_key(&error, name));
                for error in errors {
                    self.problems.push(describe_load_error(error, Some(name)));
                }
                let tree = self.tree;
                if let (Some(key), Some(Value::Dict(tag, dict))) = (first, tree.get(name)) {
                    self.rest_of_table::<T>(name, *tag, dict, key);
                }
                self.unreadable.push(name.to_owned());
                None
            }
        }
    }

    /// serde stops at a table's first wrong value: read the table again without it, and again,
    /// so that every wrong value in it is reported, not only the first.
    fn rest_of_table<T: DeserializeOwned>(
        &mut self,
        name: &str,
        tag: figment::value::Tag,
        dict: &Dict,
        reported: String,
    ) {
        let mut rest = dict.clone();
        let mut removed = reported;
        while rest.remove(&removed).is_some() {
            let Err(errors) = T::deserialize(&Value::Dict(tag, rest.clone())) else { return };
            let Some(mut error) = errors.into_iter().next() else { return };
            let Some(key) = error.path.first().cloned() else { return };
            error.metadata = self.figment.find_metadata(&format!("{name}.{key}")).cloned();
            self.problems.push(describe_load_error(error, Some(name)));
            removed = key;
        }
    }

    fn unknown_sections(&mut self) {
        let sections = fields_of::<Settings>();
        for name in self.tree.keys().filter(|name| !sections.contains(&name.as_str())) {
            let advice = match section_of(name) {
                Some(section) => format!("is not a section; `{name}` belongs under [{section}]"),
                None => match closest(name, sections) {
                    Some(meant) => format!("is not a section; did you mean [{meant}]?"),
                    None => format!("is not a section; the sections are {}", sections.join(", ")),
                },
            };
            let origin = origin(self.figment, name);
            self.problems.push(Problem { key: name.clone(), message: advice + &origin });
        }
    }

    fn unknown_keys(&mut self, at: &str, dict: &Dict, known: &[&str]) {
        let section = at.split('[').next().unwrap_or(at);
        for key in dict.keys().filter(|key| !known.contains(&key.as_str())) {
            let mut message = match closest(key, known) {
                Some(meant) => format!("is not a setting; did you mean `{meant}`?"),
                None => match section_of(key).filter(|other| *other != section) {
                    Some(other) => {
                        format!("is not a setting of [{section}]; it belongs under [{other}]")
                    }
                    None => format!(
                        "is not a setting of [{section}]; its settings are {}",
                        known.join(", ")
                    ),
                },
            };
            // Only tables have a path figment can look up; a list entry's comes from its list.
            if !at.contains('[') {
                message.push_str(&origin(self.figment, &format!("{at}.{key}")));
            }
            self.problems.push(Problem { key: format!("{at}.{key}"), message });
        }
    }
}

/// Each section's name and its keys.
fn sections() -> [(&'static str, &'static [&'static str]); 16] {
    [
        ("server", fields_of::<super::ServerSettings>()),
        ("notion", fields_of::<super::NotionSettings>()),
        ("storage", fields_of::<super::StorageSettings>()),
        ("security", fields_of::<super::SecuritySettings>()),
        ("lifecycle", fields_of::<super::LifecycleSettings>()),
        ("documents", fields_of::<super::DocumentSettings>()),
        ("webhooks", fields_of::<super::WebhookSettings>()),
        ("command_hook", fields_of::<super::CommandHookSettings>()),
        ("delivery", fields_of::<super::DeliverySettings>()),
        ("connect", fields_of::<super::ConnectSettings>()),
        ("pages", fields_of::<super::PagesSettings>()),
        ("branding", fields_of::<super::BrandingSettings>()),
        ("proxy", fields_of::<super::ProxySettings>()),
        ("rate_limit", fields_of::<super::RateLimitSettings>()),
        ("tls", fields_of::<super::TlsSettings>()),
        ("acme", fields_of::<super::AcmeSettings>()),
    ]
}

/// The section that has a key named `key`, if one does.
fn section_of(key: &str) -> Option<&'static str> {
    sections().into_iter().find(|(_, keys)| keys.contains(&key)).map(|(section, _)| section)
}

/// The key within section `name` that a figment error is about, if it is about one.
fn first_key(error: &figment::Error, name: &str) -> Option<String> {
    // figment adds the section after the path within it (see `describe_load_error`).
    error.path.iter().find(|part| *part != name).cloned()
}

/// The known name `written` was probably meant to be: a small typo away, or the start of it
/// (`timeout` for `timeout_seconds`).
fn closest<'a>(written: &str, known: &[&'a str]) -> Option<&'a str> {
    let written = written.to_ascii_lowercase();
    let (distance, best) = known
        .iter()
        .map(|candidate| (strsim::levenshtein(&written, candidate), *candidate))
        .min_by_key(|(distance, _)| *distance)?;
    if distance <= 2 || distance * 3 <= written.len() {
        return Some(best);
    }
    known.iter().copied().find(|candidate| candidate.starts_with(&format!("{written}_")))
}

/// ` (in FILE)` or ` (in the environment …)`: where the value at `path` came from.
fn origin(figment: &Figment, path: &str) -> String {
    figment.find_metadata(path).map(origin_of).unwrap_or_default()
}

fn origin_of(metadata: &figment::Metadata) -> String {
    match &metadata.source {
        Some(source) => format!(" (in {source})"),
        // figment names these "`NOH_` environment variable(s)".
        None if metadata.name.contains("environment") => " (from an environment variable)".into(),
        None => format!(" (in {})", metadata.name),
    }
}

/// The field names a struct deserializes, asked of its `Deserialize` implementation, so that the
/// list of known keys is never written twice.
fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

/// A deserializer that only notes the fields a struct asks for.
struct Probe<'a>(&'a mut &'static [&'static str]);

/// How [`Probe`] stops every deserialization.
#[derive(Debug)]
struct Probed;

impl std::fmt::Display for Probed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("probed")
    }
}

impl std::error::Error for Probed {}

impl serde::de::Error for Probed {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Probed
    }
}

impl<'de> serde::Deserializer<'de> for Probe<'_> {
    type Error = Probed;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Probed> {
        Err(Probed)
    }

    fn deserialize_option<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Probed> {
        // `Option<Section>`: the fields are the section's.
        visitor.visit_some(self)
    }

    fn deserialize_seq<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probed> {
        // `Vec<Entry>`: the fields are an entry's.
        visitor.visit_seq(ProbeSeq(Some(self)))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Probed> {
        *self.0 = fields;
        Err(Probed)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct tuple tuple_struct map enum identifier ignored_any
    }
}

/// A list of one probed entry.
struct ProbeSeq<'a>(Option<Probe<'a>>);

impl<'de> serde::de::SeqAccess<'de> for ProbeSeq<'_> {
    type Error = Probed;

    fn next_element_seed<T: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Probed> {
        match self.0.take() {
            Some(probe) => seed.deserialize(probe).map(Some),
            None => Ok(None),
        }
    }
}

/// A figment error as a problem in plain words that never quotes a value: figment quotes the
/// value it found, and a TOML syntax error quotes the source line, either of which can be a
/// secret. `section` is the section that was being read, if one was.
fn describe_load_error(error: figment::Error, section: Option<&str>) -> Problem {
    use figment::error::Kind;
    // figment adds the section after the path within it; a key reads section first.
    let mut path = error.path.clone();
    if let Some(section) = section {
        if path.last().is_some_and(|last| last == section) {
            path.pop();
        }
        if path.first().is_none_or(|first| first != section) {
            path.insert(0, section.to_owned());
        }
    }
    let mut message = match &error.kind {
        // [[documents]] and [[webhooks]] are lists of tables, not of values in brackets.
        Kind::InvalidType(actual, _) if matches!(path.as_slice(), [one] if one == "documents" || one == "webhooks") =>
        {
            format!("must be [[{}]] tables, not {}", path[0], actual_in_words(actual))
        }
        Kind::InvalidType(actual, expected) => {
            format!("must be {}, not {}", expected_in_words(expected), actual_in_words(actual))
        }
        Kind::InvalidValue(actual, expected) => {
            format!("must be {}, not {}", expected_in_words(expected), actual_in_words(actual))
        }
        Kind::MissingField(field) => {
            path.push(field.to_string());
            "is required".to_owned()
        }
        Kind::DuplicateField(field) => {
            path.push((*field).to_owned());
            "is given twice".to_owned()
        }
        Kind::InvalidLength(length, expected) => {
            format!("has {length} {}; it must have {expected}", plural(*length, "item"))
        }
        Kind::UnknownVariant(_, expected) => format!("must be one of {}", expected.join(", ")),
        Kind::Message(text) => {
            // TOML syntax errors read "TOML parse error at line L, column C", the offending
            // line, a caret, then the reason: keep the first and last lines only.
            let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            match (lines.first(), lines.last()) {
                (Some(first), Some(last)) if lines.len() > 1 => format!("{first}: {last}"),
                (Some(only), _) => (*only).to_owned(),
                _ => text.clone(),
            }
        }
        other => other.to_string(),
    };
    let key = if path.is_empty() { "(file)".to_owned() } else { key_of(&path) };
    if let Some(metadata) = &error.metadata {
        message.push_str(&origin_of(metadata));
    }
    Problem { key, message }
}

/// `["documents", "0", "file"]` as written in messages: `documents[0].file`.
fn key_of(path: &[String]) -> String {
    let mut key = String::new();
    for part in path {
        if part.chars().all(|c| c.is_ascii_digit()) && !key.is_empty() {
            key.push_str(&format!("[{part}]"));
        } else {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(part);
        }
    }
    key
}

/// What serde calls a type, in the words of someone editing a TOML file.
fn expected_in_words(expected: &str) -> String {
    let words = match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number, 0 or more",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "a boolean" => "true or false",
        "a string" | "a borrowed string" | "a string or bytes" => "text in quotes",
        "path string" => "a file path in quotes",
        "a sequence" => "a list in brackets, e.g. [\"a\", \"b\"]",
        "a map" => "a table",
        _ if expected.starts_with("struct ") => "a table of settings",
        other => other,
    };
    words.to_owned()
}

/// What was found instead, without its value (which may be a secret).
fn actual_in_words(actual: &figment::error::Actual) -> &'static str {
    use figment::error::Actual;
    match actual {
        Actual::Bool(_) => "true or false",
        Actual::Signed(value) if *value < 0 => "a negative number",
        Actual::Unsigned(_) | Actual::Signed(_) => "that number",
        Actual::Float(_) => "a number with a fraction",
        Actual::Char(_) | Actual::Str(_) => "text",
        Actual::Seq => "a list",
        Actual::Map => "a table",
        Actual::Unit | Actual::Option => "nothing",
        _ => "something else",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_and_its_keys_are_known() {
        let mut named: Vec<&str> = sections().iter().map(|(name, _)| *name).collect();
        let mut fields = fields_of::<Settings>().to_vec();
        named.sort_unstable();
        fields.sort_unstable();
        assert_eq!(named, fields);
        assert!(sections().iter().all(|(_, keys)| !keys.is_empty()));
        assert!(fields_of::<Vec<super::super::DocumentSettings>>().contains(&"file"));
        assert!(fields_of::<Option<super::super::AcmeSettings>>().contains(&"challenge"));
        assert_eq!(section_of("public_url"), Some("server"));
    }

    #[test]
    fn a_typo_suggests_the_key_meant_and_nothing_far_off() {
        let known = ["bind", "public_url", "header_timeout_seconds"];
        assert_eq!(closest("bnd", &known), Some("bind"));
        assert_eq!(closest("public_ur", &known), Some("public_url"));
        assert_eq!(closest("PUBLIC_URL", &known), Some("public_url"));
        assert_eq!(closest("header_timeout", &known), Some("header_timeout_seconds"));
        assert_eq!(closest("colour", &known), None);
    }

    #[test]
    fn a_key_is_written_as_in_the_file() {
        let path = ["documents", "0", "file"].map(String::from);
        assert_eq!(key_of(&path), "documents[0].file");
    }
}
