//! Shared helpers of the ahp-train tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ahp_data::SynthConfig;

/// The tiny fixture CLIP (3 vision blocks, 4 heads, 32 px).
pub fn fixture_clip() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/models/clip-tiny-a")
        .display()
        .to_string()
}

/// Synthetic 4-domain, 6-class data, 20 images per class and domain, 32 px.
pub fn synth_data(dir: &Path) -> PathBuf {
    let root = dir.join("data");
    ahp_data::synth::generate(
        &SynthConfig {
            per_class: 20,
            size: 32,
            ..Default::default()
        },
        &root,
    )
    .expect("synthetic data");
    root
}

/// Options that make the fixture model learn within a few seconds.
pub fn options(data: PathBuf, out: PathBuf) -> ahp_train::TrainOptions {
    let config = ahp_spec::TrainConfig {
        steps: 100,
        batch_size: 24,
        lr: 1e-2,
        gate_lr: 5e-2,
        warmup_steps: Some(10),
        eval_every: Some(20),
        ..Default::default()
    };
    ahp_train::TrainOptions::new(&fixture_clip(), &data, &["sketch".into()], &out, config)
}

/// Largest absolute value of a tensor.
pub fn max_abs(t: &candle_core::Tensor) -> f32 {
    t.abs()
        .expect("abs")
        .flatten_all()
        .expect("flat")
        .max(0)
        .expect("max")
        .to_scalar::<f32>()
        .expect("scalar")
}
