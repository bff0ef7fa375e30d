//! The pretraining images: batches rendered from the synthetic generator on a thread of their
//! own, ahead of the optimizer, and the freshly rendered images of the zero-shot check.

use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;

use ahp_data::synth::render_sample;
use ahp_data::{Shape, Style};
use ahp_spec::preprocess::preprocess;
use ahp_spec::{PreprocessConfig, Preprocessed};
use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Result, TrainError};

/// One step's images with their style and class indices.
pub(super) type RenderedBatch = (Vec<Preprocessed>, Vec<usize>, Vec<usize>);

/// The images of `step`: style `i % styles`, a random class, both seeded by step.
fn render_batch(
    seed: u64,
    step: u64,
    n: usize,
    styles: &[Style],
    shapes: &[Shape],
    pre: &PreprocessConfig,
) -> Result<RenderedBatch> {
    let mut rng = ChaCha8Rng::seed_from_u64(ahp_data::seed::derive_seed(
        seed,
        &[b"pretrain", &step.to_le_bytes()],
    ));
    let mut images = Vec::with_capacity(n);
    let (mut s_idx, mut c_idx) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let s = i % styles.len();
        let c = rng.random_range(0..shapes.len());
        let index = (step as usize) * n + i;
        let img = render_sample(seed, styles[s], shapes[c], index, pre.shortest_edge);
        images.push(
            preprocess(&image::DynamicImage::ImageRgb8(img), pre)
                .map_err(|e| TrainError::run_dir("synthetic image", e.to_string()))?,
        );
        s_idx.push(s);
        c_idx.push(c);
    }
    Ok((images, s_idx, c_idx))
}

/// Batches rendered on their own thread, two ahead of the optimizer (a batch depends only on
/// the seed and the step, so the result is the same as rendering in the loop).
pub(super) struct Renderer {
    batches: Receiver<Result<RenderedBatch>>,
    thread: JoinHandle<()>,
}

impl Renderer {
    /// Starts rendering `steps` batches of `batch` images.
    pub(super) fn spawn(
        seed: u64,
        steps: u64,
        batch: usize,
        styles: &[Style],
        shapes: &[Shape],
        pre: &PreprocessConfig,
    ) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        let (styles, shapes, pre) = (styles.to_vec(), shapes.to_vec(), pre.clone());
        let thread = std::thread::spawn(move || {
            for step in 0..steps {
                let batch = render_batch(seed, step, batch, &styles, &shapes, &pre);
                let failed = batch.is_err();
                if tx.send(batch).is_err() || failed {
                    return;
                }
            }
        });
        Self {
            batches: rx,
            thread,
        }
    }

    /// The next step's batch (or the error that stopped the renderer).
    pub(super) fn next(&self) -> Result<RenderedBatch> {
        self.batches
            .recv()
            .map_err(|_| TrainError::run_dir("synthetic image", "the renderer stopped"))?
    }

    /// Waits for the thread to end.
    pub(super) fn join(self) -> Result<()> {
        drop(self.batches);
        self.thread
            .join()
            .map_err(|_| TrainError::run_dir("synthetic image", "the renderer panicked"))
    }
}

/// `n` fresh images of one style and class for the zero-shot check (indices from 1 000 000 on,
/// a different seed than training's, so none was seen in training).
pub(super) fn evaluation_images(
    seed: u64,
    style: Style,
    shape: Shape,
    n: usize,
    image_size: u32,
    pre: &PreprocessConfig,
) -> Result<Vec<Preprocessed>> {
    (0..n)
        .map(|i| {
            let img = render_sample(seed ^ 0xE7A1, style, shape, 1_000_000 + i, image_size);
            preprocess(&image::DynamicImage::ImageRgb8(img), pre)
                .map_err(|e| TrainError::run_dir("synthetic image", e.to_string()))
        })
        .collect()
}
