//! `ahp-data emoji`: real multi-designer artwork as a DomainBed tree.
//!
//! The same emoji concept (dog, pizza, rocket, ...) drawn by independent designers in their own
//! styles: a domain-generalization benchmark in the PACS mould. The artwork comes from pinned,
//! integrity-checked npm packages ([`designers`], [`fetch`]), is rasterized with resvg
//! ([`render`]) and written as `OUT/<designer>/<class>/<codepoint>.png`, with the attribution of
//! each designer next to its images in `OUT/<designer>/LICENSE.txt` ([`licenses`]; a file, so
//! the tree stays a DomainBed root whose domains are exactly the designers). The classes are the committed table of
//! [`classes`]. Writing is deterministic and resumable: images already in place (written
//! atomically, so complete) are kept, a directory rendered with other settings (or other
//! packages, class table or renderer) is refused, and nothing is ever removed.

pub mod caption_tree;
pub mod captions;
pub mod classes;
pub mod designers;
pub mod fetch;
pub mod iconify;
pub mod licenses;
mod marker;
mod package;
pub mod pretraining;
pub mod render;
mod sheet;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

pub use caption_tree::{CaptionTree, CaptionedEmoji};
pub use classes::{benchmark_classes, EmojiClass};
pub use designers::{designer, designers, Artwork, Designer, Package, Role, DESIGNERS};
pub use render::RenderOptions;
pub use sheet::contact_sheet;

use crate::error::{DataError, Result};
use iconify::IconSet;
use package::{PackageFiles, PackageSource};

/// Where fetched tarballs are cached by default: `$XDG_CACHE_HOME/ahp/npm`, else
/// `~/.cache/ahp/npm`.
pub fn default_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("ahp")
        .join("npm")
}

/// The attribution file in each designer's directory.
pub const LICENSE_FILE: &str = "LICENSE.txt";

/// What to write and where the artwork comes from.
#[derive(Debug, Clone)]
pub struct EmojiConfig {
    /// Output root of the DomainBed tree.
    pub out: PathBuf,
    /// Where fetched tarballs are kept (and reused when they verify).
    pub cache: PathBuf,
    /// Read the packages from this directory (`DIR/<package dir>/package/...`, unpacked)
    /// instead of fetching them; for offline use and tests.
    pub unpacked: Option<PathBuf>,
    /// Benchmark (a class tree) or pretraining (every emoji, with captions).
    pub role: Role,
    /// Designers to render (default: every designer of the role).
    pub designers: Vec<String>,
    /// Classes to render (default: all of the committed table).
    pub classes: Option<Vec<String>>,
    /// Image size, margin and background.
    pub render: RenderOptions,
    /// Show a progress bar.
    pub progress: bool,
}

impl EmojiConfig {
    /// All designers of `role` (and for the benchmark all classes), 64 px, into `out`,
    /// tarballs cached in `cache`.
    pub fn new(role: Role, out: &Path, cache: &Path) -> Self {
        Self {
            out: out.to_path_buf(),
            cache: cache.to_path_buf(),
            unpacked: None,
            role,
            designers: designers(role).iter().map(|d| d.name.to_string()).collect(),
            classes: None,
            render: RenderOptions::default(),
            progress: false,
        }
    }

    /// The designers asked for; unknown names and designers of the other role are errors.
    fn selected_designers(&self) -> Result<Vec<&'static Designer>> {
        if self.designers.is_empty() {
            return Err(DataError::option("designers", "give at least one designer"));
        }
        let mut unique: Vec<&String> = Vec::new();
        for d in &self.designers {
            if !unique.contains(&d) {
                unique.push(d);
            }
        }
        unique
            .into_iter()
            .map(|name| match designer(name) {
                Some(d) if d.role == self.role => Ok(d),
                Some(_) if self.role == Role::Benchmark => Err(DataError::option(
                    "designers",
                    format!(
                        "`{name}` is a pretraining designer: its artwork is for the embedded CLIP's \
                         pretraining (--pretraining), not a benchmark domain"
                    ),
                )),
                Some(_) => Err(DataError::option(
                    "designers",
                    format!("`{name}` is a benchmark designer: it is never part of pretraining"),
                )),
                None => Err(DataError::UnknownDomain {
                    domain: name.clone(),
                    field: "designers",
                    available: designers(self.role).iter().map(|d| d.name.to_string()).collect(),
                }),
            })
            .collect()
    }

    /// The classes asked for, in table order; unknown names are errors. Pretraining has no
    /// classes (every emoji of each designer).
    fn selected_classes(&self) -> Result<Vec<EmojiClass>> {
        if self.role == Role::Pretraining {
            return match self.classes {
                Some(_) => Err(DataError::option(
                    "classes",
                    "pretraining takes every emoji of each designer; --classes is for the benchmark",
                )),
                None => Ok(Vec::new()),
            };
        }
        let all = benchmark_classes();
        let Some(wanted) = &self.classes else {
            return Ok(all);
        };
        if wanted.is_empty() {
            return Err(DataError::option("classes", "give at least one class"));
        }
        if let Some(bad) = wanted.iter().find(|w| !all.iter().any(|c| &c.name == *w)) {
            return Err(DataError::option(
                "classes",
                format!("`{bad}` is not a class of the emoji benchmark (`ahp-data emoji --list-classes` lists them)"),
            ));
        }
        Ok(all
            .into_iter()
            .filter(|c| wanted.contains(&c.name))
            .collect())
    }
}

/// Images of one designer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesignerCount {
    /// Designer (domain) name.
    pub designer: String,
    /// Images in its directory.
    pub images: usize,
    /// Rendered by this run (the rest were already in place).
    pub rendered: usize,
    /// The artwork's licence.
    pub license: String,
}

/// What [`build`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmojiSummary {
    /// Output root.
    pub out: PathBuf,
    /// Benchmark or pretraining.
    pub role: Role,
    /// Classes per designer (benchmark; 0 for pretraining).
    pub classes: usize,
    /// Image side in pixels.
    pub size: u32,
    /// Per designer.
    pub designers: Vec<DesignerCount>,
}

impl fmt::Display for EmojiSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total: usize = self.designers.iter().map(|d| d.images).sum();
        let rendered: usize = self.designers.iter().map(|d| d.rendered).sum();
        let what = match self.role {
            Role::Benchmark => format!(
                "{} designers x {} classes",
                self.designers.len(),
                self.classes
            ),
            Role::Pretraining => format!(
                "{} pretraining designers, every emoji",
                self.designers.len()
            ),
        };
        writeln!(
            f,
            "wrote {total} images ({s}x{s} px, {what}; {rendered} rendered, {} already there) to {}",
            total - rendered,
            self.out.display(),
            s = self.size,
        )?;
        for d in &self.designers {
            writeln!(
                f,
                "  {:<18} {:>4} images  {}",
                d.designer, d.images, d.license
            )?;
        }
        if self.role == Role::Pretraining {
            writeln!(
                f,
                "captions: {}",
                self.out.join(pretraining::CAPTIONS_FILE).display()
            )?;
        }
        write!(
            f,
            "attribution: {}",
            self.out.join("<designer>").join(LICENSE_FILE).display()
        )
    }
}

/// Fetches (or reads) the artwork and writes the tree, its licences and its marker.
pub fn build(cfg: &EmojiConfig) -> Result<EmojiSummary> {
    let designers = cfg.selected_designers()?;
    let classes = cfg.selected_classes()?;
    if !(0.0..0.45).contains(&cfg.render.margin) {
        return Err(DataError::option(
            "margin",
            format!("must be in [0, 0.45), got {}", cfg.render.margin),
        ));
    }
    if !(16..=1024).contains(&cfg.render.size) {
        return Err(DataError::option(
            "size",
            format!("must be in 16..=1024, got {}", cfg.render.size),
        ));
    }
    let next = marker::Marker::new(cfg.role, &cfg.render, &designers, &classes);
    marker::prepare_out_dir(&cfg.out, &next)?.write(&cfg.out)?;
    let bar = progress_bar(cfg.progress, (designers.len() * classes.len()) as u64);
    let counts = match cfg.role {
        Role::Benchmark => write_benchmark(cfg, &Sources::new(cfg), &designers, &classes, &bar)?,
        Role::Pretraining => pretraining::write(cfg, &Sources::new(cfg), &designers, &bar)?,
    };
    bar.finish_and_clear();
    Ok(EmojiSummary {
        out: cfg.out.clone(),
        role: cfg.role,
        classes: classes.len(),
        size: cfg.render.size,
        designers: designers
            .iter()
            .zip(counts)
            .map(|(d, (images, rendered))| DesignerCount {
                designer: d.name.to_string(),
                images,
                rendered,
                license: d.license.to_string(),
            })
            .collect(),
    })
}

/// The benchmark tree: every class of every designer, and each designer's attribution.
fn write_benchmark(
    cfg: &EmojiConfig,
    sources: &Sources<'_>,
    designers: &[&'static Designer],
    classes: &[EmojiClass],
    bar: &indicatif::ProgressBar,
) -> Result<Vec<(usize, usize)>> {
    let mut counts = Vec::new();
    for d in designers {
        let art = Artworks::load(sources, d, classes)?;
        // the attribution first: an interrupted run never leaves images without it
        let licence = cfg.out.join(d.name).join(LICENSE_FILE);
        create_dir(&cfg.out.join(d.name))?;
        ahp_spec::files::write_atomic(&licence, licenses::attribution(d).as_bytes())?;
        let rendered = write_designer(cfg, d, &art, classes, bar)?;
        counts.push((classes.len(), rendered));
    }
    Ok(counts)
}

/// Where the packages' files are read from: `cfg.unpacked/<package dir>`, else each verified
/// tarball in the cache (fetched with npm if needed), fetched and hashed once per run even when
/// several designers (OpenMoji colour and black) or the codepoint tables share a package.
pub(crate) struct Sources<'a> {
    cfg: &'a EmojiConfig,
    seen: std::cell::RefCell<std::collections::HashMap<&'static str, PackageSource>>,
}

impl<'a> Sources<'a> {
    fn new(cfg: &'a EmojiConfig) -> Self {
        Self {
            cfg,
            seen: Default::default(),
        }
    }

    /// The source of `package`.
    pub(crate) fn get(&self, package: &Package) -> Result<PackageSource> {
        if let Some(s) = self.seen.borrow().get(package.name) {
            return Ok(s.clone());
        }
        let source = match &self.cfg.unpacked {
            Some(dir) => PackageSource::Dir(dir.join(package.dir_name())),
            None => {
                let (path, bytes) = fetch::fetch(package, &self.cfg.cache)?;
                PackageSource::Tarball(path, std::sync::Arc::new(bytes))
            }
        };
        self.seen.borrow_mut().insert(package.name, source.clone());
        Ok(source)
    }
}

/// The path of a class's image of one designer.
pub fn image_path(out: &Path, designer: &str, class: &EmojiClass) -> PathBuf {
    out.join(designer)
        .join(&class.name)
        .join(format!("{}.png", class.codepoint))
}

/// Renders the classes of one designer that are not in place yet; returns how many.
fn write_designer(
    cfg: &EmojiConfig,
    d: &Designer,
    art: &Artworks,
    classes: &[EmojiClass],
    bar: &indicatif::ProgressBar,
) -> Result<usize> {
    let rendered: Vec<bool> = classes
        .par_iter()
        .map(|class| {
            let path = image_path(&cfg.out, d.name, class);
            let fresh = !path.is_file();
            if fresh {
                let img = art.render(d, class, &cfg.render)?;
                create_dir(path.parent().unwrap_or(&cfg.out))?;
                let png = crate::synth::encode_png(&img, &path)?;
                ahp_spec::files::write_atomic(&path, &png)?;
            }
            bar.inc(1);
            Ok(fresh)
        })
        .collect::<Result<_>>()?;
    Ok(rendered.into_iter().filter(|r| *r).count())
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, "create directory", e))
}

fn progress_bar(show: bool, n: u64) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(n);
    b.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} images")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    b
}

/// One designer's artwork, loaded from its package.
enum Artworks {
    /// An Iconify set.
    Iconify(Box<IconSet>),
    /// SVG files by path inside the package.
    Svgs(PackageFiles, &'static str),
}

impl Artworks {
    /// Reads what `d` needs for `classes` from its package (fetched into the cache unless
    /// `cfg.unpacked` holds it).
    fn load(sources: &Sources<'_>, d: &Designer, classes: &[EmojiClass]) -> Result<Self> {
        let source = sources.get(&d.package)?;
        match d.artwork {
            Artwork::Iconify => {
                let files = PackageFiles::read(&source, |p| p == "package/icons.json")?;
                Ok(Self::Iconify(Box::new(files.json("package/icons.json")?)))
            }
            Artwork::SvgDir(dir) => {
                let wanted: BTreeSet<String> = classes
                    .iter()
                    .filter_map(|c| c.icon(d.name))
                    .map(|k| format!("package/{dir}/{k}.svg"))
                    .collect();
                let files = PackageFiles::read(&source, |p| wanted.contains(p))?;
                Ok(Self::Svgs(files, dir))
            }
        }
    }

    /// The image of `class` by `d`.
    fn render(
        &self,
        d: &Designer,
        class: &EmojiClass,
        o: &RenderOptions,
    ) -> Result<image::RgbImage> {
        let key = class.icon(d.name).unwrap_or_default();
        let fail = |message: String| DataError::Image {
            path: PathBuf::from(format!("{}/{}", d.name, class.name)),
            message,
        };
        let svg = match self {
            Self::Iconify(set) => set
                .svg(key)
                .ok_or_else(|| fail(format!("{} has no icon `{key}`", d.package.spec())))?,
            Self::Svgs(files, dir) => {
                let path = format!("package/{dir}/{key}.svg");
                let bytes = files.get(&path)?;
                String::from_utf8(bytes.to_vec())
                    .map_err(|_| fail(format!("`{path}` is not UTF-8")))?
            }
        };
        render::render(&svg, o).map_err(|e| fail(format!("icon `{key}`: {e}")))
    }
}
