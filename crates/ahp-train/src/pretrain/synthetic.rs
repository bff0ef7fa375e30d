//! The synthetic source: images rendered from ahp-data's generator in all four styles, against
//! the fixed caption set `styles × classes` ("a pencil sketch of a star."), and the zero-shot
//! report per style on freshly rendered images.

use ahp_data::synth::render_sample;
use ahp_data::{Shape, Style};
use ahp_model::{pixel_batch, ClipTokenizer, LoadedClip, ZeroShotClassifier, DEFAULT_TEMPLATE};
use ahp_spec::preprocess::preprocess;
use ahp_spec::{PreprocessConfig, Preprocessed};
use candle_core::Device;
use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::source::{Batch, BatchSource, PretrainSource};
use super::DomainZeroShot;
use crate::error::{Result, TrainError};
use crate::eval::accuracy;

/// The caption phrase of a style ("pencil sketch").
pub fn style_phrase(style: Style) -> &'static str {
    match style.name() {
        "sketch" => "pencil sketch",
        other => other,
    }
}

/// The synthetic generator's first `classes` shapes in every style.
pub(super) struct Synthetic {
    seed: u64,
    batch_size: usize,
    styles: Vec<Style>,
    shapes: Vec<Shape>,
    pre: PreprocessConfig,
    eval_per_class: usize,
}

impl Synthetic {
    /// The source of `classes` shapes; errors name the flag.
    pub(super) fn new(
        seed: u64,
        batch_size: usize,
        classes: usize,
        pre: &PreprocessConfig,
        eval_per_class: usize,
    ) -> Result<Self> {
        if classes == 0 || classes > Shape::ALL.len() {
            return Err(TrainError::option(
                "classes",
                format!("must be in 1..={}", Shape::ALL.len()),
            ));
        }
        Ok(Self {
            seed,
            batch_size,
            styles: Style::ALL.to_vec(),
            shapes: Shape::ALL[..classes].to_vec(),
            pre: pre.clone(),
            eval_per_class,
        })
    }

    /// `n` fresh images of one style and class for the zero-shot check (indices from
    /// 1 000 000 on, a different seed than training's, so none was seen in training).
    fn evaluation_images(
        &self,
        style: Style,
        shape: Shape,
        pre: &PreprocessConfig,
    ) -> Result<Vec<Preprocessed>> {
        (0..self.eval_per_class)
            .map(|i| {
                let img = render_sample(
                    self.seed ^ 0xE7A1,
                    style,
                    shape,
                    1_000_000 + i,
                    self.pre.shortest_edge,
                );
                preprocess(&image::DynamicImage::ImageRgb8(img), pre)
                    .map_err(|e| TrainError::run_dir("synthetic image", e.to_string()))
            })
            .collect()
    }
}

impl BatchSource for Synthetic {
    /// Image `i` has style `i % styles` and a random class, both seeded by the step.
    fn batch(&self, step: u64) -> Result<Batch> {
        let mut rng = ChaCha8Rng::seed_from_u64(ahp_data::seed::derive_seed(
            self.seed,
            &[b"pretrain", &step.to_le_bytes()],
        ));
        let n = self.batch_size;
        let (mut images, mut caption_of) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..n {
            let s = i % self.styles.len();
            let c = rng.random_range(0..self.shapes.len());
            let index = (step as usize) * n + i;
            let img = render_sample(
                self.seed,
                self.styles[s],
                self.shapes[c],
                index,
                self.pre.shortest_edge,
            );
            images.push(
                preprocess(&image::DynamicImage::ImageRgb8(img), &self.pre)
                    .map_err(|e| TrainError::run_dir("synthetic image", e.to_string()))?,
            );
            caption_of.push((s * self.shapes.len() + c) as u32);
        }
        Ok(Batch {
            images,
            caption_of,
            captions: None,
        })
    }
}

impl PretrainSource for Synthetic {
    /// The caption words, then the class names.
    fn vocabulary(&self) -> Result<Vec<String>> {
        let mut w: Vec<String> = [
            "a", "an", "the", "of", "photo", "pencil", "sketch", "cartoon", "painting", "picture",
            "drawing", "image", ".",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        w.extend(self.shapes.iter().map(|c| c.name().to_string()));
        Ok(w)
    }

    /// Caption `s * classes + c` names style `s` and class `c`.
    fn fixed_captions(&self) -> Option<Vec<String>> {
        Some(
            self.styles
                .iter()
                .flat_map(|s| {
                    self.shapes
                        .iter()
                        .map(move |c| format!("a {} of a {}.", style_phrase(*s), c.name()))
                })
                .collect(),
        )
    }

    fn text_positions(&self) -> Result<usize> {
        Ok(16)
    }

    fn log_classes(&self) -> Option<usize> {
        Some(self.shapes.len())
    }

    fn template(&self) -> &str {
        DEFAULT_TEMPLATE
    }

    fn fingerprint(&self) -> String {
        format!("synthetic classes {}", self.shapes.len())
    }

    fn check_tokenizer(&self, _tokenizer: &ClipTokenizer) -> Result<()> {
        Ok(())
    }

    /// Accuracy per style with the photo prompt, on freshly rendered images.
    fn zero_shot(&self, clip: &LoadedClip, device: &Device) -> Result<Vec<DomainZeroShot>> {
        let labels: Vec<String> = self.shapes.iter().map(|s| s.name().to_string()).collect();
        let zs = ZeroShotClassifier::new(&clip.model, &clip.tokenizer, &labels, DEFAULT_TEMPLATE)?;
        self.styles
            .iter()
            .map(|style| {
                let batches = self
                    .shapes
                    .iter()
                    .enumerate()
                    .map(|(c, shape)| {
                        let images = self.evaluation_images(*style, *shape, &clip.preprocess)?;
                        Ok((pixel_batch(&images, device)?, vec![c as u32; images.len()]))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let (correct, total) = accuracy(&clip.model, &zs, &[], &batches)?;
                Ok(DomainZeroShot {
                    domain: style.name().to_string(),
                    accuracy: correct as f64 / total.max(1) as f64,
                    images: total,
                    seen: true,
                })
            })
            .collect()
    }
}
