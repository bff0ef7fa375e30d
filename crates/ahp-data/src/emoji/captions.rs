//! Joining icons to emoji: codepoints (lowercase hex joined by `-`, without `fe0f`) as the key,
//! emojibase-data's labels and tags as captions, and the `chars.json` tables of four Iconify
//! sets to find the codepoint of an icon that only has a name.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

/// The join key of a codepoint sequence: lowercase, `-`-joined, without `fe0f`.
pub fn normalize_codepoint(cp: &str) -> String {
    cp.to_ascii_lowercase()
        .split('-')
        .filter(|p| *p != "fe0f" && !p.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// Whether `cp` is a join key: 1 to 8 lowercase hex code points of 1 to 6 digits, joined by
/// `-` (so it is also a safe file name).
pub fn is_codepoint(cp: &str) -> bool {
    let parts: Vec<&str> = cp.split('-').collect();
    (1..=8).contains(&parts.len())
        && parts.iter().all(|p| {
            (1..=6).contains(&p.len())
                && p.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// An emojibase label as a class name: lowercased, only ASCII letters, digits, spaces and `-`
/// kept, trimmed ("woman’s sandal" → "womans sandal"). The benchmark's class names are exactly
/// this of their labels (`make_classes.py`'s `class_name`), and pretraining captions spell
/// labels and tags the same way, so a class name is always a caption's words.
pub fn plain_label(label: &str) -> String {
    label
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == ' ' || *c == '-')
        .collect::<String>()
        .trim()
        .to_string()
}

/// Whether the sequence carries a skin-tone modifier (U+1F3FB..U+1F3FF).
pub fn has_skin_tone(cp: &str) -> bool {
    cp.split('-')
        .any(|p| matches!(p, "1f3fb" | "1f3fc" | "1f3fd" | "1f3fe" | "1f3ff"))
}

/// One emoji of emojibase-data (`en/data.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct EmojiInfo {
    /// Codepoint sequence as emojibase writes it (`1F415`).
    pub hexcode: String,
    /// CLDR short name (`dog`).
    pub label: String,
    /// Keywords.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Group (0 smileys, 1 people, 2 components, 3 animals & nature, ... 9 flags).
    pub group: Option<u32>,
}

/// emojibase-data by join key; a `hexcode` that is not a codepoint sequence is an error.
pub fn emoji_by_codepoint(all: Vec<EmojiInfo>) -> Result<BTreeMap<String, EmojiInfo>, String> {
    all.into_iter()
        .map(|e| {
            let cp = normalize_codepoint(&e.hexcode);
            if is_codepoint(&cp) {
                Ok((cp, e))
            } else {
                Err(format!(
                    "hexcode {:?} is not a codepoint sequence",
                    e.hexcode
                ))
            }
        })
        .collect()
}

/// Icon name → codepoint, from several `chars.json` tables (codepoint → name). A name maps only
/// when every table that knows it agrees; a name without hyphens (`alarmclock`, fxemoji's
/// style) also maps when exactly one codepoint's name squashes to it.
#[derive(Debug, Default)]
pub struct NameTable {
    exact: HashMap<String, Option<String>>,
    squashed: HashMap<String, Option<String>>,
}

impl NameTable {
    /// Adds one `chars.json`.
    pub fn add(&mut self, chars: &HashMap<String, String>) {
        for (cp, name) in chars {
            let cp = normalize_codepoint(cp);
            Self::insert(&mut self.exact, name.clone(), &cp);
            Self::insert(&mut self.squashed, name.replace('-', ""), &cp);
        }
    }

    fn insert(map: &mut HashMap<String, Option<String>>, key: String, cp: &str) {
        map.entry(key)
            .and_modify(|v| {
                if v.as_deref() != Some(cp) {
                    *v = None;
                }
            })
            .or_insert_with(|| Some(cp.to_string()));
    }

    /// The codepoint of an icon named `name` (numbered variants `bird-2` are not the emoji).
    pub fn codepoint(&self, name: &str) -> Option<String> {
        if let Some(found) = self.exact.get(name) {
            return found.clone();
        }
        let base = name.strip_suffix("-1").unwrap_or(name);
        if base != name {
            if let Some(found) = self.exact.get(base) {
                return found.clone();
            }
        }
        self.squashed.get(name).cloned().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_labels_are_class_names() {
        assert_eq!(plain_label("woman’s sandal"), "womans sandal");
        assert_eq!(
            plain_label("Japanese “here” button"),
            "japanese here button"
        );
        assert_eq!(plain_label(" T-Rex "), "t-rex");
        // as Python's str.lower(): KELVIN SIGN lowercases to k, İ to i + a dropped combining dot
        assert_eq!(plain_label("\u{212A}iwi İstanbul"), "kiwi istanbul");
        assert_eq!(plain_label("flag: Åland Islands"), "flag land islands");
    }

    #[test]
    fn codepoints_are_joined_without_variation_selectors() {
        assert_eq!(normalize_codepoint("2764-FE0F"), "2764");
        assert_eq!(normalize_codepoint("1F415"), "1f415");
        assert!(has_skin_tone("1f44b-1f3fd"));
        assert!(!has_skin_tone("1f415"));
        assert!(is_codepoint("1f415") && is_codepoint("0023-20e3"));
        assert!(!is_codepoint("../x") && !is_codepoint("") && !is_codepoint("1F415"));
    }

    #[test]
    fn names_map_only_when_the_tables_agree() {
        let mut t = NameTable::default();
        t.add(&HashMap::from([
            ("1F415".into(), "dog".into()),
            ("23F0".into(), "alarm-clock".into()),
        ]));
        t.add(&HashMap::from([
            ("1F415".into(), "dog".into()),
            ("1F436".into(), "puppy".into()),
        ]));
        t.add(&HashMap::from([
            ("1F436".into(), "puppy-x".into()),
            ("1F999".into(), "puppy".into()),
        ]));
        assert_eq!(t.codepoint("dog").as_deref(), Some("1f415"));
        assert_eq!(t.codepoint("dog-1").as_deref(), Some("1f415"));
        assert_eq!(t.codepoint("dog-2"), None);
        assert_eq!(t.codepoint("alarmclock").as_deref(), Some("23f0"));
        assert_eq!(t.codepoint("puppy"), None, "tables disagree");
    }
}
