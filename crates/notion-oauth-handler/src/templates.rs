//! The page templates compiled into the binary, and the folder of overrides that replaces them.
//! Apart from the renderer so that the configuration can check an overrides folder without
//! reaching up to the pages.

use std::path::Path;

use minijinja::Environment;

/// The pages, as compiled into the binary; a `pages.templates_dir` file of the same name wins.
const BUILT_IN: [(&str, &str); 5] = [
    ("base.html", include_str!("../templates/base.html")),
    ("landing.html", include_str!("../templates/landing.html")),
    ("success.html", include_str!("../templates/success.html")),
    ("denied.html", include_str!("../templates/denied.html")),
    ("error.html", include_str!("../templates/error.html")),
];

/// The templates: each built-in one, or its override from `overrides`.
///
/// # Errors
/// A template that does not parse.
pub(crate) fn environment(
    overrides: Option<&Path>,
) -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    for (name, source) in BUILT_IN {
        let custom =
            overrides.map(|dir| dir.join(name)).and_then(|path| std::fs::read_to_string(path).ok());
        match custom {
            Some(custom) => env.add_template_owned(name, custom)?,
            None => env.add_template(name, source)?,
        }
    }
    Ok(env)
}

/// Checks an overrides folder: it exists, every `.html` in it is one of ours (a typo would be
/// silently ignored otherwise), and every override parses.
///
/// # Errors
/// What is wrong, for a configuration problem.
pub(crate) fn check_overrides(dir: &Path) -> Result<(), String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".html") && !BUILT_IN.iter().any(|(known, _)| *known == name) {
            let known: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "{name} is not a page; overridable pages are {}",
                known.join(", ")
            ));
        }
    }
    environment(Some(dir))
        .map(|_| ())
        .map_err(|e| format!("a template in {} does not parse: {e}", dir.display()))
}
