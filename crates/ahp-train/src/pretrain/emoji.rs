//! The emoji source: an image–caption tree written by `ahp-data emoji --pretraining` (the
//! pretraining designers' artwork with emojibase labels and tags), and the zero-shot report on
//! the benchmark classes, per pretraining designer (seen) and per benchmark designer (never
//! seen; `--benchmark`).
//!
//! Every step draws `batch / 2` distinct concepts, each by two different designers when it has
//! them (else one drawing twice), so a batch always holds positives across styles. Both images
//! of a concept share its caption, which appears once among the step's captions: the same
//! emoji by another designer is a positive, never a false negative.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use ahp_data::emoji::captions::plain_label;
use ahp_data::emoji::{benchmark_classes, image_path, CaptionTree, EmojiClass};
use ahp_model::{pixel_batch, ClipTokenizer, LoadedClip, ZeroShotClassifier};
use ahp_spec::preprocess::{load_image, normalize, preprocess, resize_bicubic};
use ahp_spec::{PreprocessConfig, Preprocessed};
use candle_core::Device;
use image::RgbImage;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

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
        let concepts = tree
            .emoji
            .iter()
            .map(|e| {
                let images = e
                    .images
                    .iter()
                    .map(|(_, path)| decode(path))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Concept {
                    label: plain_label(&e.label),
                    tags: e
                        .tags
                        .iter()
                        .map(|t| plain_label(t))
                        .filter(|t| !t.is_empty())
                        .collect(),
                    images,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            tree,
            concepts,
            o: o.clone(),
            seed,
            batch_size,
            pre: pre.clone(),
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
            .map_err(|e| TrainError::run_dir("emoji image", e.to_string()))?;
        if rng.random::<f64>() < c.flip_probability {
            image::imageops::flip_horizontal_in_place(&mut resized);
        }
        self.o.jitter.apply(&mut resized, rng);
        Ok(normalize(&resized, pre))
    }

    /// The benchmark classes of the zero-shot report: those of the committed class table whose
    /// codepoint the tree draws (all 210 in the full tree; the model cannot know the others).
    fn report_classes(&self) -> Vec<EmojiClass> {
        benchmark_classes()
            .into_iter()
            .filter(|c| self.tree.get(&c.codepoint).is_some())
            .collect()
    }

    /// Every benchmark class's drawing under `dir` (`path_of(class)`), labelled by its index.
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
    /// designer (unseen), with their images of the benchmark classes.
    fn report_domains(&self, classes: &[EmojiClass]) -> Result<Vec<ReportDomain>> {
        let mut domains: Vec<_> = self
            .tree
            .designers
            .iter()
            .map(|d| {
                let dir = self.tree.root.join(d);
                let images =
                    Self::class_images(classes, |c| dir.join(format!("{}.png", c.codepoint)));
                (d.clone(), true, images)
            })
            .collect();
        if let Some(bench) = &self.o.benchmark {
            for d in benchmark_designers(bench)? {
                let images = Self::class_images(classes, |c| image_path(bench, &d, c));
                domains.push((d, false, images));
            }
        }
        Ok(domains)
    }
}

/// Decodes one drawing as RGB.
fn decode(path: &Path) -> Result<RgbImage> {
    load_image(path)
        .map(|i| i.to_rgb8())
        .map_err(|e| TrainError::run_dir(path, e.to_string()))
}

/// The designer directories of a benchmark tree, sorted.
fn benchmark_designers(root: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(root)
        .map_err(|e| TrainError::run_dir(root, format!("cannot read the benchmark tree: {e}")))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| TrainError::run_dir(root, e.to_string()))?;
        if entry.path().is_dir() {
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    if names.is_empty() {
        return Err(TrainError::run_dir(
            root,
            "no designer directories (expected an `ahp-data emoji` tree)",
        ));
    }
    Ok(names)
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

    /// Every reported benchmark class's prompt must be spelled without unknown words.
    fn check_tokenizer(&self, tokenizer: &ClipTokenizer) -> Result<()> {
        let unk = tokenizer.token_to_id(super::UNK);
        for c in self.report_classes() {
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
        let classes = self.report_classes();
        let labels: Vec<String> = classes.iter().map(|c| c.name.clone()).collect();
        let zs = ZeroShotClassifier::new(&clip.model, &clip.tokenizer, &labels, &self.o.template)?;
        let mut out = Vec::new();
        for (domain, seen, images) in self.report_domains(&classes)? {
            let mut batches = Vec::new();
            for chunk in images.chunks(64) {
                let pixels = chunk
                    .iter()
                    .map(|(p, _)| {
                        preprocess(
                            &image::DynamicImage::ImageRgb8(decode(p)?),
                            &clip.preprocess,
                        )
                        .map_err(|e| TrainError::run_dir(p, e.to_string()))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let labels = chunk.iter().map(|(_, l)| *l).collect();
                batches.push((pixel_batch(&pixels, device)?, labels));
            }
            let (correct, total) = accuracy(&clip.model, &zs, &[], &batches)?;
            out.push(DomainZeroShot {
                domain,
                accuracy: correct as f64 / total.max(1) as f64,
                images: total,
                seen,
            });
        }
        Ok(out)
    }
}
