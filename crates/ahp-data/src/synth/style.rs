//! The rendering styles, i.e. the domains of the synthetic data set, and their names.

use std::fmt;

use super::names;
use crate::error::{DataError, Result};

/// A rendering style, i.e. a domain of the synthetic data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Style {
    /// Textured, shaded, noisy object on a cluttered gradient background.
    Photo,
    /// Grayscale pencil lines and hatching on white paper.
    Sketch,
    /// Flat saturated fill, thick black outline, plain bright background.
    Cartoon,
    /// Colour blotches, brush streaks, soft edges and blur.
    Painting,
}

impl Style {
    /// All styles, in the default `--domains` order.
    pub const ALL: [Style; 4] = [Style::Photo, Style::Sketch, Style::Cartoon, Style::Painting];

    /// The domain name (used as the directory name).
    pub fn name(self) -> &'static str {
        match self {
            Style::Photo => "photo",
            Style::Sketch => "sketch",
            Style::Cartoon => "cartoon",
            Style::Painting => "painting",
        }
    }

    /// The style with this name, if any.
    pub(super) fn from_name(name: &str) -> Option<Style> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Parses one domain name; the error lists the available ones.
    pub fn parse(name: &str) -> Result<Style> {
        Self::from_name(name).ok_or_else(|| DataError::UnknownDomain {
            domain: name.to_string(),
            field: "domains",
            available: names(&Self::ALL, Style::name),
        })
    }

    /// Parses a comma-separated list of domain names (spaces around names are ignored).
    /// Unknown, duplicate or no names are errors.
    pub fn parse_list(list: &str) -> Result<Vec<Style>> {
        let mut styles = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let style = Self::parse(name)?;
            if styles.contains(&style) {
                return Err(DataError::option(
                    "domains",
                    format!("domain '{name}' is listed twice in '{list}'"),
                ));
            }
            styles.push(style);
        }
        if styles.is_empty() {
            return Err(DataError::option(
                "domains",
                format!("no domain names in '{list}'"),
            ));
        }
        Ok(styles)
    }
}

impl fmt::Display for Style {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_validated() {
        assert_eq!(
            Style::parse_list("sketch, photo").expect("valid list"),
            vec![Style::Sketch, Style::Photo]
        );
        let err = Style::parse_list("photo,oil").expect_err("unknown");
        let msg = err.to_string();
        assert!(msg.contains("'oil'") && msg.contains("painting"), "{msg}");
        let err = Style::parse_list("photo,photo").expect_err("duplicate");
        assert!(err.to_string().contains("twice"), "{err}");
    }
}
