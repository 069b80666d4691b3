//! `[branding]`: how the pages name and show the app a user is connecting to Notion.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use url::Url;

use super::problems::Problems;
use super::settings::BrandingSettings;

/// A logo file becomes part of every page that shows it (a `data:` URL, so the pages stay free
/// of requests for assets), so it has to be small.
const MAX_LOGO_BYTES: usize = 64 * 1024;
const MAX_NAME_CHARS: usize = 60;

/// `[branding]`, checked: what the pages show of the app.
#[derive(Debug, Clone, Default)]
pub struct Branding {
    /// The app's name ("Connect <app> to Notion").
    pub app_name: Option<String>,
    /// An image source for the app's logo: an https URL, or a `data:` URL read from a file.
    pub logo: Option<String>,
    /// The accent colour of buttons and focus rings.
    pub accent: Option<Accent>,
    /// Where a user gets help.
    pub support_url: Option<Url>,
    /// The app itself: the success page's "Back to <app>".
    pub app_url: Option<Url>,
}

/// An accent colour and the text colour that reads on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accent {
    /// `#rrggbb`.
    pub color: [u8; 3],
    /// Whichever of white or black contrasts more with it: one of the two always reaches
    /// 4.5:1, so any accent makes a readable button.
    pub text: [u8; 3],
}

impl Accent {
    /// `#rrggbb` for a page's style.
    pub fn css(color: [u8; 3]) -> String {
        format!("#{:02x}{:02x}{:02x}", color[0], color[1], color[2])
    }
}

/// WCAG 2's relative luminance of an sRGB colour.
pub(crate) fn luminance([r, g, b]: [u8; 3]) -> f64 {
    let channel = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.040_45 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
    };
    0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
}

/// WCAG 2's contrast ratio of two colours (1 to 21).
pub(crate) fn contrast(a: [u8; 3], b: [u8; 3]) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

pub(super) fn validate(
    settings: &BrandingSettings,
    base_dir: &Path,
    problems: &mut Problems,
) -> Branding {
    let app_name = settings.app_name.as_deref().map(str::trim).filter(|n| !n.is_empty());
    let app_name = app_name.and_then(|name| problems.check("branding.app_name", check_name(name)));
    let logo = settings
        .logo
        .as_deref()
        .and_then(|logo| problems.check("branding.logo", logo_source(logo, base_dir)));
    let accent = settings.accent_color.as_deref().and_then(|color| {
        problems.check("branding.accent_color", parse_color(color)).map(|color| {
            // Against pure white and pure black, the better of the two is at least 4.58:1 for
            // any colour; a softer black would leave mid-greys (#777) below 4.5.
            let (white, ink) = ([255, 255, 255], [0, 0, 0]);
            let text = if contrast(color, white) >= contrast(color, ink) { white } else { ink };
            Accent { color, text }
        })
    });
    let support_url = settings.support_url.as_deref().and_then(|url| {
        problems.check("branding.support_url", check_url(url, &["https", "http", "mailto"]))
    });
    let app_url = settings
        .app_url
        .as_deref()
        .and_then(|url| problems.check("branding.app_url", check_url(url, &["https", "http"])));
    Branding { app_name, logo, accent, support_url, app_url }
}

fn check_name(name: &str) -> Result<String, String> {
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("the app's name is longer than {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("the app's name holds a control character (a line break or tab?)".into());
    }
    Ok(name.to_owned())
}

/// An https URL as it is, or a file as a `data:` URL.
fn logo_source(logo: &str, base_dir: &Path) -> Result<String, String> {
    if logo.contains("://") {
        return match Url::parse(logo) {
            Ok(url) if url.scheme() == "https" => Ok(url.into()),
            _ => Err(format!(
                "`{logo}` is not an https URL; give an https URL or the path of an image file"
            )),
        };
    }
    let file = base_dir.join(logo);
    let extension = file.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let media_type = match extension.as_deref() {
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        _ => {
            return Err(format!("{} is not an .svg, .png, .jpg or .webp file", file.display()));
        }
    };
    let bytes = std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    if bytes.len() > MAX_LOGO_BYTES {
        return Err(format!(
            "{} is {} KiB; a logo is shown inline in every page, so keep it under {} KiB",
            file.display(),
            bytes.len().div_ceil(1024),
            MAX_LOGO_BYTES / 1024
        ));
    }
    Ok(format!("data:{media_type};base64,{}", STANDARD.encode(bytes)))
}

fn parse_color(text: &str) -> Result<[u8; 3], String> {
    let hex = text.trim().strip_prefix('#').unwrap_or("");
    let digits: Vec<u8> =
        hex.chars().filter_map(|c| c.to_digit(16)).filter_map(|d| u8::try_from(d).ok()).collect();
    match (hex.len(), digits.len()) {
        (6, 6) => {
            Ok([digits[0] * 16 + digits[1], digits[2] * 16 + digits[3], digits[4] * 16 + digits[5]])
        }
        (3, 3) => Ok([digits[0] * 17, digits[1] * 17, digits[2] * 17]),
        _ => Err(format!("`{text}` is not a colour such as #2383e2")),
    }
}

fn check_url(text: &str, schemes: &[&str]) -> Result<Url, String> {
    match Url::parse(text) {
        Ok(url) if schemes.contains(&url.scheme()) => Ok(url),
        _ => Err(format!("`{text}` is not a {} address", schemes.join(" or "))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn colours_parse_in_both_forms_and_nothing_else() {
        assert_eq!(parse_color("#2383e2").unwrap(), [0x23, 0x83, 0xe2]);
        assert_eq!(parse_color("#fA0").unwrap(), [0xff, 0xaa, 0x00]);
        for bad in ["2383e2", "#2383e", "#ggg", "#+12345", "blue", "#１２３"] {
            assert!(parse_color(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_accent_gets_a_text_colour_that_reads_at_aa() {
        let mut problems = Problems::default();
        for color in ["#000000", "#ffffff", "#777777", "#2383e2", "#ffcc00", "#ff0000", "#767676"] {
            let settings =
                BrandingSettings { accent_color: Some(color.into()), ..Default::default() };
            let accent = validate(&settings, Path::new("."), &mut problems).accent.unwrap();
            assert!(contrast(accent.color, accent.text) >= 4.5, "{color}");
        }
    }
}
