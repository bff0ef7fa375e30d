//! The emoji source: an image–caption tree written by `ahp-data emoji --pretraining` (the
//! pretraining designers' artwork with emojibase labels and tags), and the zero-shot report on
//! the benchmark classes, per pretraining designer (seen) and per benchmark designer (never
//! seen; `--benchmark`).
//!
//! Every step draws `ceil(batch / 2)` distinct concepts (at most all of them), each by two
//! different designers when it has them (else one drawing twice; with an odd batch the last
//! concept has one image), so a batch always holds positives across styles. Both images of a
//! concept share its caption, and each caption text appears once among the step's captions
//! (two concepts whose captions read the same share it): the same emoji by another designer is
//! a positive, never a false negative.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use ahp_data::emoji::captions::plain_label;
use ahp_data::emoji::pretraining::CAPTIONS_FILE;
use ahp_data::emoji::{benchmark_classes, designers, image_path, CaptionTree, EmojiClass, Role};
use ahp_model::{pixel_batch, ClipTokenizer, LoadedClip, ZeroShotClassifier};
use ahp_spec::preprocess::{decode_image, normalize, preprocess, resize_bicubic};
use ahp_spec::{PreprocessConfig, Preprocessed};
use candle_core::Device;
use image::RgbImage;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use super::checkpoint::WordSplitter;
use super::source::{Batch, BatchSource, PretrainSource};
use super::{CaptionOptions, DomainZeroShot};
use crate::error::{Result, TrainError};
use crate::eval::accuracy;

/// Tags appended to a caption at most.
const MAX_TAGS: usize = 4;

/// A domain of the zero-shot report: designer, whether pretraining saw it, and its labelled
/// images.
type ReportDomain = (String, bool, Vec<(PathBuf, u32)>);

/// One concept in memory: its label and tags spelled as class names
/// ([`plain_label`]) and its decoded drawings.
struct Concept {
    label: String,
    tags: Vec<String>,
    images: Vec<RgbImage>,
}

/// The pretraining tree in memory.
pub(super) struct EmojiSource {
    tree: CaptionTree,
    concepts: Vec<Concept>,
    o: CaptionOptions,
    seed: u64,
    batch_size: usize,
    pre: PreprocessConfig,
    /// sha256 of `captions.jsonl` and of every drawing's bytes, in order.
    digest: String,
    /// The benchmark classes of the zero-shot report and its domains, checked before training.
    classes: Vec<EmojiClass>,
    report: Vec<ReportDomain>,
}

impl EmojiSource {
    /// Reads the tree and decodes every drawing; errors name the file.
    pub(super) fn load(
        o: &CaptionOptions,
        seed: u64,
        batch_size: usize,
        pre: &PreprocessConfig,
    ) -> Result<Self> {
        o.crop.validate()?;
        o.jitter.validate()?;
        if !(0.0..=1.0).contains(&o.tag_probability) {
            return Err(TrainError::option("tag-probability", "must be in [0, 1]"));
        }
        if o.template.matches("{}").count() != 1 {
            return Err(TrainError::option(
                "template",
                format!("`{}` must contain `{{}}` exactly once", o.template),
            ));
        }
        let tree = CaptionTree::load(&o.tree)?;
        if tree.emoji.len() < 2 || batch_size < 3 {
            return Err(TrainError::option(
                "batch-size",
                format!(
                    "a step needs two captions at least: {} emoji in {}, batch size {batch_size} (at least 3)",
                    tree.emoji.len(),
                    o.tree.display()
                ),
            ));
        }
        let mut digest = Sha256::new();
        digest.update(ahp_spec::files::read_regular(
            &o.tree.join(CAPTIONS_FILE),
            64 << 20,
        )?);
        let mut concepts = Vec::with_capacity(tree.emoji.len());
        for e in &tree.emoji {
            let label = plain_label(&e.label);
            if label.is_empty() {
                return Err(TrainError::run_dir(
                    o.tree.join(CAPTIONS_FILE),
                    format!(
                        "{}: label `{}` has no ASCII letter or digit",
                        e.codepoint, e.label
                    ),
                ));
            }
            let mut images = Vec::with_capacity(e.images.len());
            for (_, path) in &e.images {
                let bytes = ahp_spec::files::read_regular(path, 16 << 20)?;
                digest.update(&bytes);
                images.push(decode(path, &bytes)?);
            }
            let tags = e
                .tags
                .iter()
                .map(|t| plain_label(t))
                .filter(|t| !t.is_empty())
                .collect();
            concepts.push(Concept {
                label,
                tags,
                images,
            });
        }
        let classes = report_classes(&tree);
        if classes.is_empty() {
            return Err(TrainError::option(
                "captions",
                format!("{}: draws none of the benchmark classes", o.tree.display()),
            ));
        }
        let report = report_domains(&tree, o.benchmark.as_deref(), &classes)?;
        Ok(Self {
            tree,
            concepts,
            o: o.clone(),
            seed,
            batch_size,
            pre: pre.clone(),
            digest: format!("{:x}", digest.finalize()),
            classes,
            report,
        })
    }

    /// Concepts and drawings in the tree.
    pub(super) fn size(&self) -> (usize, usize) {
        (self.concepts.len(), self.tree.images())
    }

    /// The caption of a concept: the template around its label, and with probability
    /// `tag_probability` up to [`MAX_TAGS`] of its tags in random order.
    fn caption(&self, c: &Concept, rng: &mut ChaCha8Rng) -> String {
        let base = self.o.template.replacen("{}", &c.label, 1);
        let with_tags = rng.random::<f64>() < self.o.tag_probability;
        let mut tags: Vec<&str> = c
            .tags
            .iter()
            .map(String::as_str)
            .filter(|t| *t != c.label)
            .collect();
        if !with_tags || tags.is_empty() {
            return base;
        }
        tags.shuffle(rng);
        tags.truncate(MAX_TAGS);
        format!("{base} {}.", tags.join(", "))
    }

    /// One drawing augmented: random resized crop, bicubic resize, colour jitter, normalize.
    fn augment(&self, image: &RgbImage, rng: &mut ChaCha8Rng) -> Result<Preprocessed> {
        let (c, pre) = (&self.o.crop, &self.pre);
        let b = ahp_data::loader::random_resized_crop_params(
            image.width(),
            image.height(),
            c.scale,
            c.ratio,
            rng,
        );
        let crop = image::imageops::crop_imm(image, b.x, b.y, b.width, b.height).to_image();
        let mut resized = resize_bicubic(&crop, pre.crop_height, pre.crop_width)
            .map_err(|e| TrainError::run_dir("emoji image crop", e.to_string()))?;
        if rng.random::<f64>() < c.flip_probability {
            image::imageops::flip_horizontal_in_place(&mut resized);
        }
        self.o.jitter.apply(&mut resized, rng);
        Ok(normalize(&resized, pre))
    }
}

/// Decodes one drawing's bytes as RGB (the error names the file).
fn decode(path: &Path, bytes: &[u8]) -> Result<RgbImage> {
    Ok(decode_image(bytes, &path.display().to_string())?.to_rgb8())
}

/// The benchmark classes of the zero-shot report: those of the committed class table whose
/// codepoint the tree draws (all 210 in the full tree; the model cannot know the others).
fn report_classes(tree: &CaptionTree) -> Vec<EmojiClass> {
    benchmark_classes()
        .into_iter()
        .filter(|c| tree.get(&c.codepoint).is_some())
        .collect()
}

/// Every class's drawing at `path_of(class)` that exists, labelled by the class's index.
fn class_images(
    classes: &[EmojiClass],
    path_of: impl Fn(&EmojiClass) -> PathBuf,
) -> Vec<(PathBuf, u32)> {
    classes
        .iter()
        .enumerate()
        .map(|(i, c)| (path_of(c), i as u32))
        .filter(|(p, _)| p.is_file())
        .collect()
}

/// The domains of the zero-shot report: each pretraining designer (seen) and each benchmark
/// designer of `benchmark` (unseen; only designers of the benchmark role, never one the tree
/// holds, each with images of the classes).
fn report_domains(
    tree: &CaptionTree,
    benchmark: Option<&Path>,
    classes: &[EmojiClass],
) -> Result<Vec<ReportDomain>> {
    let mut domains: Vec<ReportDomain> = tree
        .designers
        .iter()
        .map(|d| {
            let dir = tree.root.join(d);
            let images = class_images(classes, |c| dir.join(format!("{}.png", c.codepoint)));
            (d.clone(), true, images)
        })
        .collect();
    let Some(bench) = benchmark else {
        return Ok(domains);
    };
    if !bench.is_dir() {
        return Err(TrainError::run_dir(
            bench,
            "--benchmark: not a directory (expected an `ahp-data emoji --out` tree)",
        ));
    }
    for d in designers(Role::Benchmark) {
        if tree.designers.iter().any(|t| t == d.name) {
            return Err(TrainError::run_dir(
                &tree.root,
                format!(
                    "holds benchmark designer `{}`: it would not be unseen",
                    d.name
                ),
            ));
        }
        let images = class_images(classes, |c| image_path(bench, d.name, c));
        if !images.is_empty() {
            domains.push((d.name.to_string(), false, images));
        }
    }
    if domains.iter().all(|d| d.1) {
        return Err(TrainError::run_dir(
            bench,
            "--benchmark: no benchmark designer's images of the classes",
        ));
    }
    Ok(domains)
}

impl BatchSource for EmojiSource {
    fn batch(&self, step: u64) -> Result<Batch> {
        let mut rng = ChaCha8Rng::seed_from_u64(ahp_data::seed::derive_seed(
            self.seed,
            &[b"pretrain-captions", &step.to_le_bytes()],
        ));
        let n = self.concepts.len();
        let picked = rand::seq::index::sample(&mut rng, n, self.batch_size.div_ceil(2).min(n));
        let (mut images, mut caption_of, mut captions) = (Vec::new(), Vec::new(), Vec::new());
        for (j, ci) in picked.iter().enumerate() {
            let c = &self.concepts[ci];
            let k = c.images.len();
            let first = rng.random_range(0..k);
            let second = if k > 1 {
                (first + rng.random_range(1..k)) % k
            } else {
                first
            };
            for d in [first, second] {
                if images.len() < self.batch_size {
                    images.push(self.augment(&c.images[d], &mut rng)?);
                    caption_of.push(j as u32);
                }
            }
            captions.push(self.caption(c, &mut rng));
        }
        Ok(Batch {
            images,
            caption_of,
            captions: Some(captions),
        })
    }
}

impl PretrainSource for EmojiSource {
    /// The words of the template and of every label, and each tag word used by at least two
    /// emoji (a tag word of one emoji only, such as a flag's ISO code, would cost an embedding
    /// row and teach nothing its label does not), as the tokenizer splits them.
    fn vocabulary(&self) -> Result<Vec<String>> {
        let split = WordSplitter::new()?;
        let mut words: BTreeSet<String> = split
            .words(&self.o.template.replace("{}", ""))?
            .into_iter()
            .collect();
        let mut uses: HashMap<String, usize> = HashMap::new();
        for c in &self.concepts {
            words.extend(split.words(&c.label)?);
            let mut own = BTreeSet::new();
            for t in &c.tags {
                own.extend(split.words(t)?);
            }
            for w in own {
                *uses.entry(w).or_default() += 1;
            }
        }
        words.extend(uses.into_iter().filter(|(_, n)| *n >= 2).map(|(w, _)| w));
        Ok(words.into_iter().collect())
    }

    fn fixed_captions(&self) -> Option<Vec<String>> {
        None
    }

    /// The longest caption (the template, a label and its longest tags) in words, plus the two
    /// special tokens, rounded up to a multiple of 8 (at least 16).
    fn text_positions(&self) -> Result<usize> {
        let split = WordSplitter::new()?;
        let words = |s: &str| split.words(s).map(|w| w.len());
        let template = words(&self.o.template.replace("{}", ""))?;
        let mut longest = 0;
        for c in &self.concepts {
            let mut tags = c
                .tags
                .iter()
                .map(|t| Ok(words(t)? + 1))
                .collect::<Result<Vec<usize>>>()?;
            tags.sort_unstable_by(|a, b| b.cmp(a));
            longest = longest.max(words(&c.label)? + tags.iter().take(MAX_TAGS).sum::<usize>() + 1);
        }
        Ok((template + longest + 2).div_ceil(8).max(2) * 8)
    }

    fn log_classes(&self) -> Option<usize> {
        None
    }

    fn template(&self) -> &str {
        &self.o.template
    }

    /// The data's digest and the drawing settings (not the tree's path, nor the report's
    /// benchmark: neither changes a batch).
    fn fingerprint(&self) -> String {
        let o = &self.o;
        format!(
            "emoji {} template {:?} tags {} crop {:?} jitter {:?}",
            self.digest, o.template, o.tag_probability, o.crop, o.jitter
        )
    }

    /// Every reported benchmark class's prompt must be spelled without unknown words.
    fn check_tokenizer(&self, tokenizer: &ClipTokenizer) -> Result<()> {
        let unk = tokenizer.token_to_id(super::UNK);
        for c in &self.classes {
            let prompt = self.o.template.replacen("{}", &c.name, 1);
            let ids = tokenizer.encode_batch(std::slice::from_ref(&prompt))?.ids;
            if ids.iter().flatten().any(|id| Some(*id) == unk) {
                return Err(TrainError::option(
                    "captions",
                    format!("benchmark class `{}`: the prompt `{prompt}` has words no caption of the tree uses", c.name),
                ));
            }
        }
        Ok(())
    }

    /// Accuracy over the benchmark classes with the caption template, per designer.
    fn zero_shot(&self, clip: &LoadedClip, device: &Device) -> Result<Vec<DomainZeroShot>> {
        let labels: Vec<String> = self.classes.iter().map(|c| c.name.clone()).collect();
        let zs = ZeroShotClassifier::new(&clip.model, &clip.tokenizer, &labels, &self.o.template)?;
        let mut out = Vec::new();
        for (domain, seen, images) in &self.report {
            let mut batches = Vec::new();
            for chunk in images.chunks(64) {
                let pixels = chunk
                    .iter()
                    .map(|(p, _)| {
                        let bytes = ahp_spec::files::read_regular(p, 16 << 20)?;
                        let image = image::DynamicImage::ImageRgb8(decode(p, &bytes)?);
                        Ok(preprocess(&image, &clip.preprocess)?)
                    })
                    .collect::<Result<Vec<_>>>()?;
                let labels = chunk.iter().map(|(_, l)| *l).collect();
                batches.push((pixel_batch(&pixels, device)?, labels));
            }
            let (correct, total) = accuracy(&clip.model, &zs, &[], &batches)?;
            out.push(DomainZeroShot {
                domain: domain.clone(),
                accuracy: correct as f64 / total.max(1) as f64,
                images: total,
                seen: *seen,
            });
        }
        Ok(out)
    }
}
