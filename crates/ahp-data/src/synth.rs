//! Procedural multi-domain data set: simple object classes drawn in four styles.
//!
//! Each image shows one object (a [`Shape`]) with a random position, scale, rotation, aspect
//! and colour, rendered in one [`Style`]:
//!
//! * **photo**: gradient background with soft clutter (blobs, thin lines), a textured and shaded
//!   object with a drop shadow, per-pixel sensor noise;
//! * **sketch**: grayscale, off-white paper with grain, dark thin wobbly double outlines,
//!   diagonal hatching inside the object and faint construction lines;
//! * **cartoon**: plain bright background, flat saturated fill with a hard cel shadow and a
//!   highlight, thick black outline, no noise at all;
//! * **painting**: low-frequency colour blotches, directional brush-stroke streaks, a soft
//!   wobbly object boundary, and a final blur.
//!
//! Every image is a pure function of `(seed, style, shape, index, size)`: its generator is a
//! `ChaCha8Rng` seeded with [`image_seed`], so [`generate`] can render in parallel and the same
//! configuration always writes byte-identical PNG files.

use std::f32::consts::{PI, TAU};
use std::fmt;
use std::path::{Path, PathBuf};

use image::{ImageEncoder, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::error::{DataError, Result};
use crate::seed::{derive_seed, splitmix64};

/// Smallest image side [`generate`] accepts.
pub const MIN_SIZE: u32 = 16;
/// Largest image side [`generate`] accepts.
pub const MAX_SIZE: u32 = 2048;

/// An object class of the synthetic data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    /// A filled disc.
    Circle,
    /// An (almost axis-aligned) square.
    Square,
    /// An equilateral triangle pointing up.
    Triangle,
    /// A five-pointed star.
    Star,
    /// A plus-shaped cross.
    Cross,
    /// An annulus.
    Ring,
    /// A heart.
    Heart,
    /// An arrow (shaft and head), any direction.
    Arrow,
    /// A tall rhombus.
    Diamond,
    /// A crescent moon.
    Moon,
}

impl Shape {
    /// All classes, in the order `--classes N` takes them from.
    pub const ALL: [Shape; 10] = [
        Shape::Circle,
        Shape::Square,
        Shape::Triangle,
        Shape::Star,
        Shape::Cross,
        Shape::Ring,
        Shape::Heart,
        Shape::Arrow,
        Shape::Diamond,
        Shape::Moon,
    ];

    /// The class name (a lowercase English word, used as the directory name and in prompts).
    pub fn name(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Star => "star",
            Shape::Cross => "cross",
            Shape::Ring => "ring",
            Shape::Heart => "heart",
            Shape::Arrow => "arrow",
            Shape::Diamond => "diamond",
            Shape::Moon => "moon",
        }
    }

    /// The class with this name, if any.
    pub fn from_name(name: &str) -> Option<Shape> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Largest rotation (radians, either direction) applied to this shape. Limited for shapes
    /// that would turn into another class (a square rotated by 45 degrees is a diamond).
    fn max_rotation(self) -> f32 {
        match self {
            Shape::Circle | Shape::Ring | Shape::Star | Shape::Arrow | Shape::Moon => PI,
            Shape::Square | Shape::Cross | Shape::Diamond => 0.3,
            Shape::Triangle | Shape::Heart => 0.4,
        }
    }

    /// Signed distance (negative inside) in unit coordinates: the shape fits in about
    /// `[-1, 1]^2`, y points up.
    fn sdf(self, p: V2) -> f32 {
        match self {
            Shape::Circle => p.len() - 0.9,
            Shape::Square => sd_box(p, V2::new(0.78, 0.78)),
            Shape::Triangle => sd_equilateral_triangle(V2::new(p.x, p.y + 0.2), 0.98),
            Shape::Star => sd_star5(p, 1.0, 0.42),
            Shape::Cross => sd_box(p, V2::new(0.95, 0.3)).min(sd_box(p, V2::new(0.3, 0.95))),
            Shape::Ring => (p.len() - 0.68).abs() - 0.24,
            Shape::Heart => {
                const K: f32 = 0.55;
                sd_heart(V2::new(p.x * K, p.y * K + 0.55)) / K
            }
            Shape::Arrow => sd_polygon(
                p,
                &[
                    V2::new(-0.95, 0.2),
                    V2::new(0.12, 0.2),
                    V2::new(0.12, 0.58),
                    V2::new(0.95, 0.0),
                    V2::new(0.12, -0.58),
                    V2::new(0.12, -0.2),
                    V2::new(-0.95, -0.2),
                ],
            ),
            Shape::Diamond => sd_polygon(
                p,
                &[
                    V2::new(0.0, 1.0),
                    V2::new(0.62, 0.0),
                    V2::new(0.0, -1.0),
                    V2::new(-0.62, 0.0),
                ],
            ),
            Shape::Moon => {
                let outer = p.len() - 0.92;
                let bite = (p - V2::new(0.42, 0.22)).len() - 0.74;
                outer.max(-bite)
            }
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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

    /// Parses one domain name; the error lists the available ones.
    pub fn parse(name: &str) -> Result<Style> {
        Self::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| DataError::UnknownDomain {
                domain: name.to_string(),
                field: "domains",
                available: Self::ALL.iter().map(|s| s.name().to_string()).collect(),
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

/// What [`generate`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthConfig {
    /// Base seed; every image's generator is derived from it.
    pub seed: u64,
    /// Number of classes: the first `classes` of [`Shape::ALL`].
    pub classes: usize,
    /// Domains to write, one directory each.
    pub domains: Vec<Style>,
    /// Images per class and domain.
    pub per_class: usize,
    /// Image side in pixels (square images).
    pub size: u32,
}

impl Default for SynthConfig {
    /// Seed 0, 6 classes, all four domains, 40 images per class, 64 px.
    fn default() -> Self {
        Self {
            seed: 0,
            classes: 6,
            domains: Style::ALL.to_vec(),
            per_class: 40,
            size: 64,
        }
    }
}

impl SynthConfig {
    /// Checks every field; errors name the field.
    pub fn validate(&self) -> Result<()> {
        self.shapes()?;
        if self.domains.is_empty() {
            return Err(DataError::option("domains", "no domains given"));
        }
        for (i, d) in self.domains.iter().enumerate() {
            if self.domains[..i].contains(d) {
                return Err(DataError::option(
                    "domains",
                    format!("domain '{d}' is listed twice"),
                ));
            }
        }
        if self.per_class == 0 {
            return Err(DataError::option("per_class", "must be at least 1"));
        }
        if self.size < MIN_SIZE {
            return Err(DataError::option(
                "size",
                format!("{} px is too small (minimum {MIN_SIZE})", self.size),
            ));
        }
        if self.size > MAX_SIZE {
            return Err(DataError::option(
                "size",
                format!("{} px is too large (maximum {MAX_SIZE})", self.size),
            ));
        }
        Ok(())
    }

    /// The classes written: the first `classes` shapes.
    pub fn shapes(&self) -> Result<&'static [Shape]> {
        if self.classes == 0 {
            return Err(DataError::option("classes", "must be at least 1"));
        }
        Shape::ALL.get(..self.classes).ok_or_else(|| {
            DataError::option(
                "classes",
                format!(
                    "{} requested but only {} are available ({})",
                    self.classes,
                    Shape::ALL.len(),
                    Shape::ALL.map(Shape::name).join(", ")
                ),
            )
        })
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthSummary {
    /// The output directory.
    pub out_dir: PathBuf,
    /// Image side in pixels.
    pub size: u32,
    /// Class names, in class order.
    pub classes: Vec<String>,
    /// Images written per domain, in the configured order.
    pub per_domain: Vec<(String, usize)>,
    /// Images written in total.
    pub total: usize,
}

impl fmt::Display for SynthSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "wrote {} images ({}x{} px, {} domains x {} classes) to {}",
            self.total,
            self.size,
            self.size,
            self.per_domain.len(),
            self.classes.len(),
            self.out_dir.display()
        )?;
        for (domain, count) in &self.per_domain {
            writeln!(f, "  {domain:<10} {count:>6} images")?;
        }
        write!(f, "classes: {}", self.classes.join(", "))
    }
}

/// The seed of one image's generator, derived from `(seed, style, shape, index)`.
pub fn image_seed(seed: u64, style: Style, shape: Shape, index: usize) -> u64 {
    derive_seed(
        seed,
        &[
            b"synth",
            style.name().as_bytes(),
            shape.name().as_bytes(),
            &(index as u64).to_le_bytes(),
        ],
    )
}

/// Renders image `index` of class `shape` in domain `style`, exactly as [`generate`] writes it.
pub fn render_sample(seed: u64, style: Style, shape: Shape, index: usize, size: u32) -> RgbImage {
    render(style, shape, size, image_seed(seed, style, shape, index))
}

/// Renders one `size x size` image from an explicit generator seed. Sizes below 1 are treated
/// as 1 (use at least [`MIN_SIZE`] for recognizable images).
pub fn render(style: Style, shape: Shape, size: u32, seed: u64) -> RgbImage {
    let size = size.max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let s = size as f32;
    let place = Placement::random(shape, s, &mut rng);
    let canvas = match style {
        Style::Photo => render_photo(shape, &place, size as usize, &mut rng),
        Style::Sketch => render_sketch(shape, &place, size as usize, &mut rng),
        Style::Cartoon => render_cartoon(shape, &place, size as usize, &mut rng),
        Style::Painting => render_painting(shape, &place, size as usize, &mut rng),
    };
    canvas.into_image()
}

/// How many of the generator's classes, in [`Shape::ALL`] order, `vocabulary` names as quoted
/// words (e.g. the text of a word-level `tokenizer.json`): the classes that a checkpoint
/// pretrained on this generator (`ahp-pretrain`) knows.
pub fn classes_named_in(vocabulary: &str) -> usize {
    Shape::ALL
        .iter()
        .take_while(|s| vocabulary.contains(&format!("\"{}\"", s.name())))
        .count()
}

/// A preview grid: one row per domain of `cfg`, one column per class, showing image `index`
/// of each, separated by 2-pixel white gutters.
pub fn contact_sheet(cfg: &SynthConfig, index: usize) -> Result<RgbImage> {
    cfg.validate()?;
    let shapes = cfg.shapes()?;
    let gap = 2u32;
    let cell = cfg.size + gap;
    let mut sheet = RgbImage::from_pixel(
        shapes.len() as u32 * cell + gap,
        cfg.domains.len() as u32 * cell + gap,
        image::Rgb([255, 255, 255]),
    );
    for (row, &style) in cfg.domains.iter().enumerate() {
        for (col, &shape) in shapes.iter().enumerate() {
            let tile = render_sample(cfg.seed, style, shape, index, cfg.size);
            image::imageops::replace(
                &mut sheet,
                &tile,
                i64::from(gap + col as u32 * cell),
                i64::from(gap + row as u32 * cell),
            );
        }
    }
    Ok(sheet)
}

/// Encodes an image as PNG in memory (deterministic: same pixels, same bytes). `name` is used
/// in errors.
pub fn encode_png(image: &RgbImage, name: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| DataError::Image {
            path: name.to_path_buf(),
            message: format!("cannot encode PNG: {e}"),
        })?;
    Ok(bytes)
}

/// Marker written into a generated directory: what it holds, so that generating into it again
/// removes the images of the previous run that the new one does not write.
const MARKER_FILE: &str = ".ahp-synth.json";

/// The domains, classes and images per class of a generated directory.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Marker {
    domains: Vec<String>,
    classes: Vec<String>,
    per_class: usize,
}

/// Readies `out` for `next`: a new or empty directory is fine; one written before by
/// [`generate`] (it has the marker) loses the previous images `next` does not rewrite; any
/// other non-empty directory is refused, so stale images never mix into the data set.
fn prepare_out_dir(out: &Path, next: &Marker) -> Result<Option<Marker>> {
    let Ok(mut entries) = std::fs::read_dir(out) else {
        return Ok(None);
    };
    if entries.next().is_none() {
        return Ok(None);
    }
    let marker = out.join(MARKER_FILE);
    let previous: Marker = std::fs::read(&marker)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(Marker::is_plausible)
        .or_else(|| legacy_marker(out))
        .ok_or_else(|| DataError::OutputDir {
            path: out.to_path_buf(),
            message: format!(
                "is not empty and was not written by `ahp-data synth` (no {MARKER_FILE}); choose a new or empty directory"
            ),
        })?;
    for domain in &previous.domains {
        for class in &previous.classes {
            let dir = out.join(domain).join(class);
            let keep = next.domains.contains(domain) && next.classes.contains(class);
            for index in 0..previous.per_class {
                if !keep || index >= next.per_class {
                    let file = dir.join(format!("{index}.png"));
                    match std::fs::remove_file(&file) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(DataError::io(&file, "remove stale image", e)),
                    }
                }
            }
            if !keep {
                // Only empty directories go; anything else put there stays.
                let _ = std::fs::remove_dir(&dir);
            }
        }
        if !next.domains.contains(domain) {
            let _ = std::fs::remove_dir(out.join(domain));
        }
    }
    Ok(Some(previous))
}

impl Marker {
    /// Only style and shape names and a sane count: a hand-edited marker can never make
    /// `prepare_out_dir` remove files outside the data set or loop for ages.
    fn is_plausible(&self) -> bool {
        self.domains
            .iter()
            .all(|d| Style::ALL.iter().any(|s| s.name() == d))
            && self
                .classes
                .iter()
                .all(|c| Shape::ALL.iter().any(|s| s.name() == c))
            && self.per_class <= 1_000_000
    }

    /// Both markers' contents: what the directory may hold while a generation runs.
    fn union(&self, other: &Marker) -> Marker {
        let merge = |a: &[String], b: &[String]| {
            let mut v = a.to_vec();
            v.extend(b.iter().filter(|x| !a.contains(x)).cloned());
            v
        };
        Marker {
            domains: merge(&self.domains, &other.domains),
            classes: merge(&self.classes, &other.classes),
            per_class: self.per_class.max(other.per_class),
        }
    }

    fn write(&self, out: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| DataError::option("synth", format!("cannot serialize the marker: {e}")))?;
        Ok(ahp_spec::files::write_atomic(
            &out.join(MARKER_FILE),
            &json,
        )?)
    }
}

/// What a directory written before markers existed holds, if it looks like one: only
/// directories named after styles, holding directories named after shapes, holding `N.png`.
fn legacy_marker(out: &Path) -> Option<Marker> {
    let names = |dir: &Path| -> Option<Vec<String>> {
        std::fs::read_dir(dir)
            .ok()?
            .map(|e| e.ok().and_then(|e| e.file_name().into_string().ok()))
            .collect()
    };
    let domains = names(out)?;
    let mut per_class = 0;
    for d in &domains {
        Style::ALL.iter().find(|s| s.name() == d)?;
        for c in names(&out.join(d))? {
            Shape::ALL.iter().find(|s| s.name() == c)?;
            for f in names(&out.join(d).join(&c))? {
                let index: usize = f.strip_suffix(".png")?.parse().ok()?;
                per_class = per_class.max(index + 1);
            }
        }
    }
    Some(Marker {
        domains,
        classes: Shape::ALL.iter().map(|s| s.name().to_string()).collect(),
        per_class,
    })
}

/// Writes the data set in DomainBed layout, `out/<domain>/<class>/<index>.png`, rendering in
/// parallel. Each file is written to a hidden temporary file in its directory and renamed into
/// place, so readers never see partial images. Generating into a directory written before
/// removes the previous images the new settings do not produce (no stale images); a non-empty
/// directory not written by this function is refused.
pub fn generate(cfg: &SynthConfig, out: &Path) -> Result<SynthSummary> {
    cfg.validate()?;
    let shapes = cfg.shapes()?;
    let marker = Marker {
        domains: cfg.domains.iter().map(|d| d.name().to_string()).collect(),
        classes: shapes.iter().map(|s| s.name().to_string()).collect(),
        per_class: cfg.per_class,
    };
    let previous = prepare_out_dir(out, &marker)?;
    // Until the generation completes the directory may hold both sets (a killed run).
    std::fs::create_dir_all(out).map_err(|e| DataError::io(out, "create directory", e))?;
    previous
        .map_or(marker.clone(), |p| p.union(&marker))
        .write(out)?;
    for style in &cfg.domains {
        for shape in shapes {
            let dir = out.join(style.name()).join(shape.name());
            std::fs::create_dir_all(&dir)
                .map_err(|e| DataError::io(&dir, "create directory", e))?;
        }
    }
    let jobs: Vec<(Style, Shape, usize)> = cfg
        .domains
        .iter()
        .flat_map(|&style| {
            shapes
                .iter()
                .flat_map(move |&shape| (0..cfg.per_class).map(move |i| (style, shape, i)))
        })
        .collect();
    jobs.par_iter().try_for_each(|&(style, shape, index)| {
        let path = out
            .join(style.name())
            .join(shape.name())
            .join(format!("{index}.png"));
        let image = render_sample(cfg.seed, style, shape, index, cfg.size);
        let bytes = encode_png(&image, &path)?;
        Ok::<(), DataError>(ahp_spec::files::write_atomic(&path, &bytes)?)
    })?;
    marker.write(out)?;
    let per_class_domain = shapes.len() * cfg.per_class;
    Ok(SynthSummary {
        out_dir: out.to_path_buf(),
        size: cfg.size,
        classes: shapes.iter().map(|s| s.name().to_string()).collect(),
        per_domain: cfg
            .domains
            .iter()
            .map(|d| (d.name().to_string(), per_class_domain))
            .collect(),
        total: jobs.len(),
    })
}

// ---------------------------------------------------------------------------------------------
// Geometry.

#[derive(Debug, Clone, Copy, PartialEq)]
struct V2 {
    x: f32,
    y: f32,
}

impl V2 {
    const fn new(x: f32, y: f32) -> Self {
        Self { x, y }
    }
    fn dot(self, o: V2) -> f32 {
        self.x * o.x + self.y * o.y
    }
    fn len(self) -> f32 {
        self.dot(self).sqrt()
    }
    fn abs(self) -> V2 {
        V2::new(self.x.abs(), self.y.abs())
    }
}

impl std::ops::Sub for V2 {
    type Output = V2;
    fn sub(self, o: V2) -> V2 {
        V2::new(self.x - o.x, self.y - o.y)
    }
}

impl std::ops::Add for V2 {
    type Output = V2;
    fn add(self, o: V2) -> V2 {
        V2::new(self.x + o.x, self.y + o.y)
    }
}

impl std::ops::Mul<f32> for V2 {
    type Output = V2;
    fn mul(self, k: f32) -> V2 {
        V2::new(self.x * k, self.y * k)
    }
}

fn sd_box(p: V2, b: V2) -> f32 {
    let d = p.abs() - b;
    V2::new(d.x.max(0.0), d.y.max(0.0)).len() + d.x.max(d.y).min(0.0)
}

/// Inigo Quilez's exact equilateral triangle (apex up, side `2 r`).
fn sd_equilateral_triangle(p: V2, r: f32) -> f32 {
    let k = 3f32.sqrt();
    let mut p = V2::new(p.x.abs() - r, p.y + r / k);
    if p.x + k * p.y > 0.0 {
        p = V2::new(p.x - k * p.y, -k * p.x - p.y) * 0.5;
    }
    p.x -= p.x.clamp(-2.0 * r, 0.0);
    -p.len() * p.y.signum()
}

/// Inigo Quilez's exact five-pointed star (outer radius `r`, inner factor `rf`).
fn sd_star5(p: V2, r: f32, rf: f32) -> f32 {
    let k1 = V2::new(0.809_017, -0.587_785_24);
    let k2 = V2::new(-k1.x, k1.y);
    let mut p = V2::new(p.x.abs(), p.y);
    p = p - k1 * (2.0 * k1.dot(p).max(0.0));
    p = p - k2 * (2.0 * k2.dot(p).max(0.0));
    p.x = p.x.abs();
    p.y -= r;
    let ba = V2::new(-k1.y, k1.x) * rf - V2::new(0.0, 1.0);
    let h = (p.dot(ba) / ba.dot(ba)).clamp(0.0, r);
    (p - ba * h).len() * (p.y * ba.x - p.x * ba.y).signum()
}

/// Inigo Quilez's exact heart (tip at the origin, about 1.1 tall).
fn sd_heart(p: V2) -> f32 {
    let p = V2::new(p.x.abs(), p.y);
    if p.y + p.x > 1.0 {
        return (p - V2::new(0.25, 0.75)).len() - std::f32::consts::SQRT_2 / 4.0;
    }
    let a = p - V2::new(0.0, 1.0);
    let b = p - V2::new(1.0, 1.0) * (0.5 * (p.x + p.y).max(0.0));
    a.dot(a).min(b.dot(b)).sqrt() * (p.x - p.y).signum()
}

/// Inigo Quilez's exact polygon distance.
fn sd_polygon(p: V2, v: &[V2]) -> f32 {
    let Some(&first) = v.first() else {
        return f32::INFINITY;
    };
    let mut d = (p - first).dot(p - first);
    let mut s = 1.0f32;
    let mut j = v.len() - 1;
    for i in 0..v.len() {
        let e = v[j] - v[i];
        let w = p - v[i];
        let b = w - e * (w.dot(e) / e.dot(e)).clamp(0.0, 1.0);
        d = d.min(b.dot(b));
        let c = [p.y >= v[i].y, p.y < v[j].y, e.x * w.y > e.y * w.x];
        if c.iter().all(|&x| x) || c.iter().all(|&x| !x) {
            s = -s;
        }
        j = i;
    }
    s * d.sqrt()
}

/// Where the object sits: centre, radius (pixels), rotation and aspect.
struct Placement {
    cx: f32,
    cy: f32,
    r: f32,
    cos: f32,
    sin: f32,
    sx: f32,
    sy: f32,
}

impl Placement {
    fn random(shape: Shape, s: f32, rng: &mut ChaCha8Rng) -> Self {
        let r = s * rng.random_range(0.24..0.34);
        let margin = r * 1.18;
        let cx = rng.random_range(margin..(s - margin).max(margin + 1e-3));
        let cy = rng.random_range(margin..(s - margin).max(margin + 1e-3));
        let max_rot = shape.max_rotation();
        let angle = rng.random_range(-max_rot..max_rot);
        let sx = rng.random_range(0.85..1.15);
        let sy = rng.random_range(0.85..1.15);
        Self {
            cx,
            cy,
            r,
            cos: angle.cos(),
            sin: angle.sin(),
            sx,
            sy,
        }
    }

    /// Signed distance in pixels from the centre of pixel-space point `(x, y)` to the shape.
    fn dist(&self, shape: Shape, x: f32, y: f32) -> f32 {
        let dx = x - self.cx;
        let dy = self.cy - y;
        let lx = self.cos * dx + self.sin * dy;
        let ly = -self.sin * dx + self.cos * dy;
        let p = V2::new(lx / (self.r * self.sx), ly / (self.r * self.sy));
        shape.sdf(p) * self.r * self.sx.min(self.sy)
    }
}

// ---------------------------------------------------------------------------------------------
// Noise and colour.

/// Uniform in `[0, 1)` from a lattice point.
fn hash01(seed: u64, a: i64, b: i64) -> f32 {
    let h = splitmix64(
        seed ^ splitmix64(
            (a as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ (b as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F),
        ),
    );
    (h >> 40) as f32 / (1u64 << 24) as f32
}

/// Smooth value noise in `[0, 1]`, one lattice cell per unit.
fn value_noise(seed: u64, x: f32, y: f32) -> f32 {
    let (fx, fy) = (x.floor(), y.floor());
    let (ix, iy) = (fx as i64, fy as i64);
    let (tx, ty) = (x - fx, y - fy);
    let (ux, uy) = (tx * tx * (3.0 - 2.0 * tx), ty * ty * (3.0 - 2.0 * ty));
    let a = hash01(seed, ix, iy);
    let b = hash01(seed, ix + 1, iy);
    let c = hash01(seed, ix, iy + 1);
    let d = hash01(seed, ix + 1, iy + 1);
    let top = a + (b - a) * ux;
    let bottom = c + (d - c) * ux;
    top + (bottom - top) * uy
}

/// Fractal value noise (3 octaves) in `[0, 1]`.
fn fbm(seed: u64, x: f32, y: f32) -> f32 {
    let mut sum = 0.0;
    let mut amp = 0.5;
    let mut freq = 1.0;
    let mut norm = 0.0;
    for octave in 0..3u64 {
        sum += amp * value_noise(seed.wrapping_add(octave), x * freq, y * freq);
        norm += amp;
        amp *= 0.5;
        freq *= 2.03;
    }
    sum / norm
}

/// Approximately normal noise with standard deviation 1 (sum of three uniforms).
fn gauss(seed: u64, a: i64, b: i64) -> f32 {
    let u = hash01(seed, a, b) + hash01(seed ^ 0x5151, a, b) + hash01(seed ^ 0xA3A3, a, b);
    (u - 1.5) * 2.0
}

fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Anti-aliased coverage of the inside (`d < 0`) with an edge `width` pixels wide.
fn coverage(d: f32, width: f32) -> f32 {
    (0.5 - d / width).clamp(0.0, 1.0)
}

/// Coverage of a stroke of half-width `hw` centred on the zero level set.
fn stroke(d: f32, hw: f32) -> f32 {
    (0.5 - (d.abs() - hw)).clamp(0.0, 1.0)
}

type Rgb = [f32; 3];

fn hsv(h: f32, s: f32, v: f32) -> Rgb {
    let h = h.rem_euclid(1.0) * 6.0;
    let c = v * s;
    let x = c * (1.0 - ((h % 2.0) - 1.0).abs());
    let m = v - c;
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    [r + m, g + m, b + m]
}

fn lerp(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

fn scale(a: Rgb, k: f32) -> Rgb {
    [a[0] * k, a[1] * k, a[2] * k]
}

struct Canvas {
    size: usize,
    px: Vec<Rgb>,
}

impl Canvas {
    fn from_fn(size: usize, mut f: impl FnMut(f32, f32) -> Rgb) -> Self {
        let mut px = Vec::with_capacity(size * size);
        for y in 0..size {
            for x in 0..size {
                px.push(f(x as f32 + 0.5, y as f32 + 0.5));
            }
        }
        Self { size, px }
    }

    /// Applies `f(pixel, x, y)` to every pixel (pixel-centre coordinates).
    fn apply(&mut self, mut f: impl FnMut(&mut Rgb, f32, f32)) {
        for (i, p) in self.px.iter_mut().enumerate() {
            let (x, y) = (i % self.size, i / self.size);
            f(p, x as f32 + 0.5, y as f32 + 0.5);
        }
    }

    /// Separable `[1 4 6 4 1] / 16` blur with clamped borders.
    fn blur(&mut self) {
        const K: [f32; 5] = [1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0];
        let n = self.size as i64;
        let at = |v: i64| v.clamp(0, n - 1) as usize;
        for horizontal in [true, false] {
            let src = self.px.clone();
            for y in 0..n {
                for x in 0..n {
                    let mut acc = [0.0; 3];
                    for (k, w) in K.iter().enumerate() {
                        let o = k as i64 - 2;
                        let (sx, sy) = if horizontal { (x + o, y) } else { (x, y + o) };
                        let p = src[at(sy) * self.size + at(sx)];
                        for c in 0..3 {
                            acc[c] += w * p[c];
                        }
                    }
                    self.px[y as usize * self.size + x as usize] = acc;
                }
            }
        }
    }

    fn into_image(self) -> RgbImage {
        let side = self.size as u32;
        let mut raw = Vec::with_capacity(self.px.len() * 3);
        for p in &self.px {
            for c in p {
                raw.push((c.clamp(0.0, 1.0) * 255.0).round() as u8);
            }
        }
        RgbImage::from_raw(side, side, raw).unwrap_or_else(|| RgbImage::new(side, side))
    }
}

/// Distance in pixels from `(x, y)` to the segment `a`-`b`.
fn segment_distance(x: f32, y: f32, a: V2, b: V2) -> f32 {
    let p = V2::new(x, y);
    let (pa, ba) = (p - a, b - a);
    let h = (pa.dot(ba) / ba.dot(ba).max(1e-6)).clamp(0.0, 1.0);
    (pa - ba * h).len()
}

// ---------------------------------------------------------------------------------------------
// Styles.

fn render_photo(shape: Shape, pl: &Placement, size: usize, rng: &mut ChaCha8Rng) -> Canvas {
    let s = size as f32;
    let u = s / 64.0;
    // Background: two muted colours along a random direction, low-frequency light variation.
    let h1: f32 = rng.random();
    let c1 = hsv(
        h1,
        rng.random_range(0.15..0.45),
        rng.random_range(0.35..0.85),
    );
    let c2 = hsv(
        h1 + rng.random_range(-0.2..0.2),
        rng.random_range(0.1..0.4),
        rng.random_range(0.3..0.9),
    );
    let angle = rng.random_range(0.0..TAU);
    let (dx, dy) = (angle.cos(), angle.sin());
    let light_seed: u64 = rng.random();
    let mut canvas = Canvas::from_fn(size, |x, y| {
        let t = (((x - s / 2.0) * dx + (y - s / 2.0) * dy) / s + 0.5).clamp(0.0, 1.0);
        let light = 0.9 + 0.2 * fbm(light_seed, x / (s / 4.0), y / (s / 4.0));
        scale(lerp(c1, c2, t), light)
    });
    // Clutter: soft blobs and thin lines.
    let clutter = rng.random_range(4..=8);
    for _ in 0..clutter {
        let color = hsv(
            rng.random(),
            rng.random_range(0.1..0.45),
            rng.random_range(0.2..0.95),
        );
        let alpha = rng.random_range(0.25..0.55);
        if rng.random_bool(0.6) {
            let (ex, ey) = (rng.random_range(0.0..s), rng.random_range(0.0..s));
            let (ra, rb) = (
                rng.random_range(0.04..0.14) * s,
                rng.random_range(0.03..0.1) * s,
            );
            let rot = rng.random_range(0.0..PI);
            let (c, sn) = (rot.cos(), rot.sin());
            canvas.apply(|p, x, y| {
                let (lx, ly) = (x - ex, y - ey);
                let (a, b) = ((c * lx + sn * ly) / ra, (-sn * lx + c * ly) / rb);
                let d = ((a * a + b * b).sqrt() - 1.0) * ra.min(rb);
                *p = lerp(*p, color, alpha * coverage(d, 2.0 * u.max(0.5)));
            });
        } else {
            let a = V2::new(rng.random_range(0.0..s), rng.random_range(0.0..s));
            let b = V2::new(rng.random_range(0.0..s), rng.random_range(0.0..s));
            let hw = rng.random_range(0.3..0.8) * u.max(0.6);
            canvas.apply(|p, x, y| {
                let d = segment_distance(x, y, a, b);
                *p = lerp(*p, color, alpha * stroke(d, hw));
            });
        }
    }
    // Drop shadow.
    let (ox, oy) = (
        rng.random_range(1.0..3.0) * u,
        rng.random_range(1.0..3.0) * u,
    );
    canvas.apply(|p, x, y| {
        let d = pl.dist(shape, x - ox, y - oy);
        *p = scale(*p, 1.0 - 0.4 * coverage(d, 3.0 * u.max(0.5)));
    });
    // Object: textured, lit from a random direction, darker near its rim.
    let base = hsv(
        rng.random(),
        rng.random_range(0.45..0.85),
        rng.random_range(0.55..0.9),
    );
    let tex_seed: u64 = rng.random();
    let la = rng.random_range(0.0..TAU);
    let (lx, ly) = (la.cos(), la.sin());
    canvas.apply(|p, x, y| {
        let d = pl.dist(shape, x, y);
        let cov = coverage(d, 1.0);
        if cov > 0.0 {
            let tex = 0.72
                + 0.56 * fbm(tex_seed, x / (s / 14.0), y / (s / 14.0)) * 0.7
                + 0.3 * hash01(tex_seed ^ 0x7e7, x as i64, y as i64) * 0.5;
            let shade = 1.0 + 0.25 * ((x - pl.cx) * lx + (y - pl.cy) * ly) / pl.r;
            let rim = 0.75 + 0.25 * smoothstep(0.0, 3.0 * u, -d);
            *p = lerp(*p, scale(base, tex * shade * rim), cov);
        }
    });
    // Sensor noise.
    let noise_seed: u64 = rng.random();
    canvas.apply(|p, x, y| {
        for (c, v) in p.iter_mut().enumerate() {
            *v += 0.045 * gauss(noise_seed.wrapping_add(c as u64), x as i64, y as i64);
        }
    });
    canvas
}

fn render_sketch(shape: Shape, pl: &Placement, size: usize, rng: &mut ChaCha8Rng) -> Canvas {
    let s = size as f32;
    let u = s / 64.0;
    let paper = rng.random_range(0.9..0.97);
    let ink = rng.random_range(0.08..0.3);
    let grain_seed: u64 = rng.random();
    let mut canvas = Canvas::from_fn(size, |x, y| {
        let v = paper
            + 0.03 * (fbm(grain_seed, x / (s / 6.0), y / (s / 6.0)) - 0.5)
            + 0.02 * (hash01(grain_seed ^ 0x9a9, x as i64, y as i64) - 0.5);
        [v; 3]
    });
    // Faint construction lines through the object.
    let lines = rng.random_range(1..=3);
    for _ in 0..lines {
        let a = rng.random_range(0.0..PI);
        let off = rng.random_range(-0.6..0.6) * pl.r;
        let (dx, dy) = (a.cos(), a.sin());
        let c = V2::new(pl.cx - dy * off, pl.cy + dx * off);
        let half = 1.3 * pl.r;
        let (p0, p1) = (c - V2::new(dx, dy) * half, c + V2::new(dx, dy) * half);
        let alpha = rng.random_range(0.15..0.3);
        canvas.apply(|p, x, y| {
            let d = segment_distance(x, y, p0, p1);
            let t = alpha * stroke(d, 0.35 * u.max(0.8));
            *p = lerp(*p, [ink; 3], t);
        });
    }
    // Hatching inside the (wobbly) object.
    let wobble = 0.025 * s;
    let j1: u64 = rng.random();
    let j2: u64 = rng.random();
    let hatch_angle: f32 =
        rng.random_range(0.5..1.1) * if rng.random_bool(0.5) { 1.0 } else { -1.0 };
    let (hx, hy) = (hatch_angle.cos(), hatch_angle.sin());
    let spacing: f32 = (rng.random_range(0.05..0.07) * s).max(2.5);
    let hatch_alpha: f32 = rng.random_range(0.45..0.7);
    let (ox, oy) = (
        rng.random_range(-0.8..0.8) * u,
        rng.random_range(-0.8..0.8) * u,
    );
    let hw = (0.011 * s).max(0.45);
    canvas.apply(|p, x, y| {
        let d = pl.dist(shape, x, y);
        let d1 = d + wobble * (2.0 * fbm(j1, x / (s / 8.0), y / (s / 8.0)) - 1.0);
        let d2 = pl.dist(shape, x - ox, y - oy)
            + wobble * (2.0 * fbm(j2, x / (s / 8.0), y / (s / 8.0)) - 1.0);
        if d1 < -0.04 * s {
            let t = (x * hx + y * hy) / spacing
                + 0.3 * (value_noise(j2 ^ 0x44, x / (s / 10.0), y / (s / 10.0)) - 0.5);
            let f = (t - t.round()).abs() * spacing;
            let cov = (0.7 - f).clamp(0.0, 1.0) * hatch_alpha;
            *p = lerp(*p, [ink; 3], cov);
        }
        *p = lerp(*p, [ink; 3], 0.9 * stroke(d1, hw));
        *p = lerp(*p, [ink; 3], 0.5 * stroke(d2, hw * 0.8));
    });
    canvas
}

fn render_cartoon(shape: Shape, pl: &Placement, size: usize, rng: &mut ChaCha8Rng) -> Canvas {
    let s = size as f32;
    let bg_h: f32 = rng.random();
    let bg = hsv(
        bg_h,
        rng.random_range(0.35..0.6),
        rng.random_range(0.92..1.0),
    );
    let fg_h = bg_h + rng.random_range(0.33..0.67);
    let (fg_s, fg_v) = (rng.random_range(0.8..1.0), rng.random_range(0.85..1.0));
    let fill = hsv(fg_h, fg_s, fg_v);
    let shadow = hsv(fg_h, fg_s, fg_v * 0.72);
    let outline = [0.05, 0.04, 0.06];
    let hw = (0.028 * s).max(1.0);
    let la = rng.random_range(0.0..TAU);
    let (lx, ly) = (la.cos(), la.sin());
    let (hx, hy) = (pl.cx - lx * 0.4 * pl.r, pl.cy - ly * 0.4 * pl.r);
    let hr = 0.13 * pl.r;
    Canvas::from_fn(size, |x, y| {
        let d = pl.dist(shape, x, y);
        let mut p = bg;
        if d < hw + 1.0 {
            let side = ((x - pl.cx) * lx + (y - pl.cy) * ly) / pl.r - 0.25;
            let body = lerp(fill, shadow, coverage(-side * pl.r, 1.0));
            p = lerp(p, body, coverage(d, 1.0));
            if d < -1.5 * hw {
                let hd = ((x - hx).powi(2) + (y - hy).powi(2)).sqrt() - hr;
                p = lerp(p, [1.0; 3], 0.9 * coverage(hd, 1.0));
            }
            p = lerp(p, outline, stroke(d, hw));
        }
        p
    })
}

fn render_painting(shape: Shape, pl: &Placement, size: usize, rng: &mut ChaCha8Rng) -> Canvas {
    let s = size as f32;
    let u = s / 64.0;
    let h0: f32 = rng.random();
    let mut palette = [[0.0; 3]; 3];
    for c in &mut palette {
        *c = hsv(
            h0 + rng.random_range(-0.1..0.1),
            rng.random_range(0.25..0.55),
            rng.random_range(0.35..0.85),
        );
    }
    let fg = hsv(
        h0 + rng.random_range(0.25..0.75),
        rng.random_range(0.5..0.85),
        rng.random_range(0.55..0.9),
    );
    let (b1, b2, b3): (u64, u64, u64) = (rng.random(), rng.random(), rng.random());
    let (sa, ss, ws): (u64, u64, u64) = (rng.random(), rng.random(), rng.random());
    let a0 = rng.random_range(0.0..PI);
    let edge = 0.025 * s;
    let mut canvas = Canvas::from_fn(size, |x, y| {
        let t1 = smoothstep(0.3, 0.7, fbm(b1, x / (s / 3.0), y / (s / 3.0)));
        let t2 = smoothstep(0.35, 0.75, fbm(b2, x / (s / 3.0), y / (s / 3.0)));
        let bg = lerp(lerp(palette[0], palette[1], t1), palette[2], t2);
        // Soft, wobbly object boundary.
        let d =
            pl.dist(shape, x, y) + 0.04 * s * (2.0 * fbm(ws, x / (s / 6.0), y / (s / 6.0)) - 1.0);
        let cov = smoothstep(1.5 * edge, -1.5 * edge, d);
        let obj = scale(fg, 0.85 + 0.3 * fbm(b3, x / (s / 5.0), y / (s / 5.0)));
        let mut p = lerp(bg, obj, 0.95 * cov);
        // Brush streaks: noise stretched along a slowly turning stroke direction.
        let a = a0 + 1.2 * (fbm(sa, x / (s / 2.0), y / (s / 2.0)) - 0.5);
        let (c, sn) = (a.cos(), a.sin());
        let (su, sv) = (x * c + y * sn, -x * sn + y * c);
        let streak = fbm(ss, su / (s / 4.0), sv / (1.6 * u.max(0.5)));
        p = scale(p, 1.0 + 0.3 * (streak - 0.5));
        p
    });
    canvas.blur();
    canvas
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_inside_the_unit_square_and_contain_their_centre_region() {
        for shape in Shape::ALL {
            // Some point near the centre region is inside; the corners are outside.
            let inside = (-4..=4)
                .flat_map(|i| (-4..=4).map(move |j| V2::new(i as f32 * 0.1, j as f32 * 0.1)))
                .any(|p| shape.sdf(p) < 0.0);
            assert!(inside, "{shape} has no interior near the centre");
            for corner in [
                V2::new(1.2, 1.2),
                V2::new(-1.2, 1.2),
                V2::new(1.2, -1.2),
                V2::new(-1.2, -1.2),
            ] {
                assert!(shape.sdf(corner) > 0.0, "{shape} covers {corner:?}");
            }
        }
    }

    #[test]
    fn names_round_trip_and_lists_are_validated() {
        for shape in Shape::ALL {
            assert_eq!(Shape::from_name(shape.name()), Some(shape));
        }
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

    #[test]
    fn config_errors_name_the_field() {
        let too_many = SynthConfig {
            classes: 11,
            ..SynthConfig::default()
        };
        let msg = too_many.validate().expect_err("11 classes").to_string();
        assert!(msg.contains("classes") && msg.contains("only 10"), "{msg}");
        let small = SynthConfig {
            size: 15,
            ..SynthConfig::default()
        };
        let msg = small.validate().expect_err("15 px").to_string();
        assert!(msg.contains("size") && msg.contains("15"), "{msg}");
        assert!(SynthConfig::default().validate().is_ok());
    }
}
