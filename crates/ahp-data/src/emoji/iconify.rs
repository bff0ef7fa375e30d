//! Iconify icon sets (`icons.json`): icon bodies, per-set and per-icon sizes, and aliases that
//! point to another icon with optional flips and quarter-turn rotations.

use std::collections::HashMap;

use serde::Deserialize;

/// Default side of an Iconify icon when neither the set nor the icon gives one.
const DEFAULT_SIDE: f64 = 16.0;

/// Longest alias chain followed (the format allows chains; a loop must not hang).
const MAX_ALIAS_DEPTH: usize = 8;

/// One icon: its SVG inner markup and optional size.
#[derive(Debug, Clone, Deserialize)]
pub struct Icon {
    /// The SVG markup inside the `<svg>` element.
    pub body: String,
    /// Width of the view box (the set's when absent).
    pub width: Option<f64>,
    /// Height of the view box (the set's when absent).
    pub height: Option<f64>,
    /// Left edge of the view box (the set's, else 0).
    pub left: Option<f64>,
    /// Top edge of the view box (the set's, else 0).
    pub top: Option<f64>,
    /// Hidden icons are kept for compatibility only.
    #[serde(default)]
    pub hidden: bool,
}

/// An alias: another icon, possibly flipped or rotated.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alias {
    /// The icon (or alias) it stands for.
    pub parent: String,
    /// Mirror left–right.
    #[serde(default)]
    pub h_flip: bool,
    /// Mirror top–bottom.
    #[serde(default)]
    pub v_flip: bool,
    /// Quarter turns clockwise.
    #[serde(default)]
    pub rotate: u8,
}

/// A whole icon set.
#[derive(Debug, Clone, Deserialize)]
pub struct IconSet {
    /// Icons by name.
    pub icons: HashMap<String, Icon>,
    /// Aliases by name.
    #[serde(default)]
    pub aliases: HashMap<String, Alias>,
    /// The set's default width.
    pub width: Option<f64>,
    /// The set's default height.
    pub height: Option<f64>,
    /// The set's default left edge.
    pub left: Option<f64>,
    /// The set's default top edge.
    pub top: Option<f64>,
}

impl IconSet {
    /// The icon `name` as a standalone SVG document (`currentColor` is black), or `None` when
    /// the set has no such icon (or its alias chain is broken or loops).
    pub fn svg(&self, name: &str) -> Option<String> {
        let (icon, transforms) = self.resolve(name)?;
        let view = ViewBox {
            left: icon.left.or(self.left).unwrap_or(0.0),
            top: icon.top.or(self.top).unwrap_or(0.0),
            width: icon.width.or(self.width).unwrap_or(DEFAULT_SIDE),
            height: icon.height.or(self.height).unwrap_or(DEFAULT_SIDE),
        };
        let mut body = icon.body.clone();
        for t in transforms.iter().rev() {
            body = t.wrap(&body, &view);
        }
        let ViewBox {
            left,
            top,
            width: w,
            height: h,
        } = view;
        Some(format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" color="black" viewBox="{left} {top} {w} {h}" width="{w}" height="{h}">{body}</svg>"#
        ))
    }

    /// The icon behind `name` and the alias transforms met on the way (outermost first).
    fn resolve(&self, name: &str) -> Option<(&Icon, Vec<Transform>)> {
        let mut transforms = Vec::new();
        let mut current = name;
        for _ in 0..=MAX_ALIAS_DEPTH {
            if let Some(icon) = self.icons.get(current) {
                return Some((icon, transforms));
            }
            let alias = self.aliases.get(current)?;
            transforms.push(Transform {
                h_flip: alias.h_flip,
                v_flip: alias.v_flip,
                rotate: alias.rotate % 4,
            });
            current = &alias.parent;
        }
        None
    }
}

/// An icon's view box.
#[derive(Debug, Clone, Copy)]
struct ViewBox {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
}

/// One alias's flips and rotation.
#[derive(Debug, Clone, Copy)]
struct Transform {
    h_flip: bool,
    v_flip: bool,
    rotate: u8,
}

impl Transform {
    /// `body` inside a group applying the transform about the view box's centre (a
    /// quarter turn of a non-square box keeps the box; the icons here are square).
    fn wrap(&self, body: &str, v: &ViewBox) -> String {
        let (cx, cy) = (v.left + v.width / 2.0, v.top + v.height / 2.0);
        let mut ops = Vec::new();
        if self.rotate > 0 {
            ops.push(format!("rotate({} {cx} {cy})", 90 * u32::from(self.rotate)));
        }
        if self.h_flip {
            ops.push(format!("translate({} 0) scale(-1 1)", 2.0 * cx));
        }
        if self.v_flip {
            ops.push(format!("translate(0 {}) scale(1 -1)", 2.0 * cy));
        }
        if ops.is_empty() {
            return body.to_string();
        }
        format!(r#"<g transform="{}">{body}</g>"#, ops.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> IconSet {
        serde_json::from_str(
            r#"{"width": 32, "height": 32,
                "icons": {"left": {"body": "<path d='M0 0h16v32H0z'/>"},
                          "tall": {"body": "<path/>", "height": 40},
                          "offset": {"body": "<path/>", "left": -4, "top": 2}},
                "aliases": {"right": {"parent": "left", "hFlip": true},
                            "loop-a": {"parent": "loop-b"}, "loop-b": {"parent": "loop-a"}}}"#,
        )
        .expect("icon set")
    }

    #[test]
    fn icons_get_the_set_size_unless_they_have_their_own() {
        let s = set();
        assert!(s
            .svg("left")
            .expect("left")
            .contains(r#"viewBox="0 0 32 32""#));
        assert!(s
            .svg("tall")
            .expect("tall")
            .contains(r#"viewBox="0 0 32 40""#));
        assert!(s.svg("left").expect("left").contains(r#"color="black""#));
        assert!(s
            .svg("offset")
            .expect("offset")
            .contains(r#"viewBox="-4 2 32 32""#));
    }

    #[test]
    fn aliases_are_followed_with_their_flips_and_loops_end() {
        let s = set();
        let right = s.svg("right").expect("alias");
        assert!(right.contains("translate(32 0) scale(-1 1)"), "{right}");
        assert!(right.contains("M0 0h16v32H0z"), "{right}");
        assert!(s.svg("loop-a").is_none());
        assert!(s.svg("missing").is_none());
    }
}
