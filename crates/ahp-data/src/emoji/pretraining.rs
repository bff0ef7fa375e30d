//! The pretraining designers' artwork: every emoji each of them draws (skin-tone variants
//! dropped), as `OUT/<designer>/<codepoint>.png`, with `OUT/captions.jsonl` giving each
//! codepoint's emojibase label and tags. The embedded CLIP is pretrained on these only; the
//! benchmark designers never appear here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;

use super::captions::{emoji_by_codepoint, has_skin_tone, EmojiInfo, NameTable};
use super::designers::{Designer, EMOJIBASE, NAME_TABLES};
use super::iconify::IconSet;
use super::package::PackageFiles;
use super::{create_dir, render, EmojiConfig, Sources, LICENSE_FILE};
use crate::error::{DataError, Result};

/// The captions file at the root of a pretraining tree.
pub const CAPTIONS_FILE: &str = "captions.jsonl";

/// The attribution of the captions, next to them.
pub const CAPTIONS_LICENSE_FILE: &str = "captions.LICENSE.txt";

/// One line of `captions.jsonl`.
#[derive(Debug, Serialize)]
struct CaptionLine<'a> {
    codepoint: &'a str,
    label: &'a str,
    tags: &'a [String],
    designers: Vec<&'a str>,
}

/// Icons of one designer by codepoint.
type Icons = BTreeMap<String, String>;

/// Renders the pretraining designers into `cfg.out`; returns per designer the images in place
/// and how many this run rendered.
pub(super) fn write(
    cfg: &EmojiConfig,
    sources: &Sources<'_>,
    designers: &[&'static Designer],
    bar: &indicatif::ProgressBar,
) -> Result<Vec<(usize, usize)>> {
    let emoji = emoji_by_codepoint(
        PackageFiles::read(&sources.get(&EMOJIBASE)?, |p| p == "package/en/data.json")?
            .json::<Vec<EmojiInfo>>("package/en/data.json")?,
    )
    .map_err(|m| DataError::package(EMOJIBASE.spec(), format!("package/en/data.json: {m}")))?;
    let names = name_table(sources)?;
    let mut drawn: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut counts = Vec::new();
    for d in designers {
        let (set, icons) = icons_of(sources, d, &names, &emoji)?;
        bar.inc_length(icons.len() as u64);
        // the attribution first: an interrupted run never leaves images without it
        create_dir(&cfg.out.join(d.name))?;
        ahp_spec::files::write_atomic(
            &cfg.out.join(d.name).join(LICENSE_FILE),
            super::licenses::attribution(d).as_bytes(),
        )?;
        let rendered = render_all(cfg, d, &set, &icons, bar)?;
        for cp in icons.keys() {
            drawn.entry(cp.clone()).or_default().push(d.name);
        }
        counts.push((icons.len(), rendered));
    }
    write_captions(&cfg.out, &drawn, &emoji)?;
    ahp_spec::files::write_atomic(
        &cfg.out.join(CAPTIONS_LICENSE_FILE),
        super::licenses::captions_attribution().as_bytes(),
    )?;
    Ok(counts)
}

/// The name → codepoint table of the four `chars.json` sets.
fn name_table(sources: &Sources<'_>) -> Result<NameTable> {
    let mut table = NameTable::default();
    for p in &NAME_TABLES {
        let files = PackageFiles::read(&sources.get(p)?, |f| f == "package/chars.json")?;
        table.add(&files.json::<HashMap<String, String>>("package/chars.json")?);
    }
    Ok(table)
}

/// A designer's icon set and its icons by codepoint: through its own `chars.json` when it has
/// one, else through `names`; only emoji emojibase knows, no skin tones, no hidden icons.
fn icons_of(
    sources: &Sources<'_>,
    d: &Designer,
    names: &NameTable,
    emoji: &BTreeMap<String, EmojiInfo>,
) -> Result<(IconSet, Icons)> {
    let files = PackageFiles::read(&sources.get(&d.package)?, |p| {
        p == "package/icons.json" || p == "package/chars.json"
    })?;
    let set: IconSet = files.json("package/icons.json")?;
    let own: Option<HashMap<String, String>> = files.json_if_present("package/chars.json")?;
    let mut icons = Icons::new();
    let mut pairs: Vec<(String, String)> = match own.filter(|c| !c.is_empty()) {
        Some(chars) => chars
            .into_iter()
            .map(|(cp, name)| (super::captions::normalize_codepoint(&cp), name))
            .filter(|(cp, _)| super::captions::is_codepoint(cp))
            .collect(),
        None => set
            .icons
            .keys()
            .filter_map(|n| names.codepoint(n).map(|cp| (cp, n.clone())))
            .collect(),
    };
    pairs.sort();
    for (cp, name) in pairs {
        let visible = set.icons.get(&name).is_none_or(|i| !i.hidden);
        if visible && emoji.contains_key(&cp) && !has_skin_tone(&cp) && set.svg(&name).is_some() {
            icons.entry(cp).or_insert(name);
        }
    }
    Ok((set, icons))
}

/// Renders the icons not in place yet; returns how many.
fn render_all(
    cfg: &EmojiConfig,
    d: &Designer,
    set: &IconSet,
    icons: &Icons,
    bar: &indicatif::ProgressBar,
) -> Result<usize> {
    let dir = cfg.out.join(d.name);
    create_dir(&dir)?;
    let fresh: Vec<bool> = icons
        .par_iter()
        .map(|(cp, name)| {
            let path = dir.join(format!("{cp}.png"));
            let todo = !path.is_file();
            if todo {
                let svg = set.svg(name).unwrap_or_default();
                let img =
                    render::render(&svg, &cfg.render).map_err(|message| DataError::Image {
                        path: path.clone(),
                        message: format!("{} icon `{name}`: {message}", d.package.spec()),
                    })?;
                ahp_spec::files::write_atomic(&path, &crate::synth::encode_png(&img, &path)?)?;
            }
            bar.inc(1);
            Ok(todo)
        })
        .collect::<Result<_>>()?;
    Ok(fresh.into_iter().filter(|f| *f).count())
}

/// `captions.jsonl`: one line per codepoint drawn by at least one designer, sorted.
fn write_captions(
    out: &Path,
    drawn: &BTreeMap<String, Vec<&str>>,
    emoji: &BTreeMap<String, EmojiInfo>,
) -> Result<()> {
    let mut text = String::new();
    for (cp, designers) in drawn {
        let Some(info) = emoji.get(cp) else { continue };
        let unique: BTreeSet<&str> = designers.iter().copied().collect();
        let line = CaptionLine {
            codepoint: cp,
            label: &info.label,
            tags: &info.tags,
            designers: unique.into_iter().collect(),
        };
        let json = serde_json::to_string(&line)
            .map_err(|e| DataError::option("emoji", format!("cannot serialize a caption: {e}")))?;
        text.push_str(&json);
        text.push('\n');
    }
    Ok(ahp_spec::files::write_atomic(
        &out.join(CAPTIONS_FILE),
        text.as_bytes(),
    )?)
}
