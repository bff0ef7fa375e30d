//! The benchmark's classes (`crates/ahp-data/emoji/classes.tsv`, derived from the pinned
//! packages by `crates/ahp-data/emoji/make_classes.py`, whose docstring gives the rules): one
//! concept per class, present in every benchmark designer, with each designer's icon.

/// The committed class table.
pub(super) const CLASSES_TSV: &str = include_str!("../../emoji/classes.tsv");

/// One class and where each benchmark designer keeps its icon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmojiClass {
    /// Class name (emojibase's label, lowercase, `[a-z0-9 -]`): the directory and the prompt.
    pub name: String,
    /// Codepoint sequence, lowercase hex joined by `-`, without `fe0f`.
    pub codepoint: String,
    /// Icon key per benchmark designer: `(designer, key)`; the key is an Iconify icon name or
    /// an SVG file stem.
    pub icons: Vec<(String, String)>,
    /// Emoji of the same concept family that are not classes of their own.
    pub dropped: Vec<String>,
}

impl EmojiClass {
    /// This class's icon key in `designer`, if it has one.
    pub fn icon(&self, designer: &str) -> Option<&str> {
        self.icons
            .iter()
            .find(|(d, _)| d == designer)
            .map(|(_, k)| k.as_str())
    }
}

/// Every class of the benchmark, in emojibase order.
pub fn benchmark_classes() -> Vec<EmojiClass> {
    parse(CLASSES_TSV)
}

/// Parses the table: a header `class codepoint <designer columns...> dropped`, then a row per
/// class. `openmoji` keys serve `openmoji-black` too (one file name, two directories).
fn parse(tsv: &str) -> Vec<EmojiClass> {
    let mut lines = tsv.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    let designers = header
        .get(2..header.len().saturating_sub(1))
        .unwrap_or_default();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let cells: Vec<&str> = line.split('\t').collect();
            let cell = |i: usize| cells.get(i).copied().unwrap_or_default().to_string();
            let mut icons: Vec<(String, String)> = designers
                .iter()
                .enumerate()
                .map(|(i, d)| (d.to_string(), cell(2 + i)))
                .collect();
            if let Some((_, k)) = icons.iter().find(|(d, _)| d == "openmoji").cloned() {
                icons.push(("openmoji-black".to_string(), k));
            }
            EmojiClass {
                name: cell(0),
                codepoint: cell(1),
                icons,
                dropped: cell(2 + designers.len())
                    .split('|')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emoji::designers::{designers, Role};

    #[test]
    fn the_committed_table_has_150_distinct_classes_in_every_benchmark_designer() {
        let classes = benchmark_classes();
        assert!(classes.len() >= 150, "{} classes", classes.len());
        let mut names: Vec<&str> = classes.iter().map(|c| c.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), classes.len(), "class names are unique");
        for c in &classes {
            assert!(
                c.name.chars().all(|ch| ch.is_ascii_lowercase()
                    || ch.is_ascii_digit()
                    || ch == ' '
                    || ch == '-'),
                "{}",
                c.name
            );
            for d in designers(Role::Benchmark) {
                assert!(
                    c.icon(d.name).is_some_and(|k| !k.is_empty()),
                    "{} in {}",
                    c.name,
                    d.name
                );
            }
            assert!(
                super::super::captions::is_codepoint(&c.codepoint),
                "{}",
                c.codepoint
            );
            // a family member is never a class of its own
            assert!(
                c.dropped.iter().all(|m| !names.contains(&m.as_str())),
                "{}",
                c.name
            );
        }
    }
}
