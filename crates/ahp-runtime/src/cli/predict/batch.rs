//! Classifying the inputs a chunk at a time: decoded and preprocessed in parallel, the good ones
//! run as one batch.

use std::path::PathBuf;
use std::time::Instant;

use ahp_spec::preprocess::ImageLimits;
use rayon::prelude::*;

use super::inputs::Input;
use crate::Classifier;

/// The top predictions of an image, or why there are none.
type Prediction = Result<Vec<(String, f32)>, String>;

/// The preprocessed pixels of an image (or why there are none), with the milliseconds it took.
type Prepared = (Result<Vec<f32>, String>, f64);

/// What became of one input.
pub(super) struct Outcome {
    /// The input's path.
    pub(super) path: PathBuf,
    /// Its top predictions, or why there are none.
    pub(super) result: Prediction,
    /// Milliseconds spent on it.
    pub(super) ms: f64,
}

/// Decodes and preprocesses a chunk of files in parallel, runs the good ones as one batch and
/// returns one outcome per file, in order. `ms` per image: its own decode + preprocess time plus
/// its share of the batch's model run.
pub(super) fn classify_chunk(
    classifier: &Classifier,
    chunk: &[Input],
    top_k: usize,
    limits: &ImageLimits,
) -> Vec<Outcome> {
    let prepared = prepare(classifier, chunk, limits);
    let good: Vec<&Vec<f32>> = prepared
        .iter()
        .filter_map(|(r, _)| r.as_ref().ok())
        .collect();
    let n = good.len();
    let t = Instant::now();
    let predictions = run_batch(classifier, &good, top_k);
    let run_share = t.elapsed().as_secs_f64() * 1e3 / n.max(1) as f64;
    outcomes(chunk, prepared, predictions, run_share)
}

/// Each input decoded and preprocessed (in parallel), timed.
fn prepare(classifier: &Classifier, chunk: &[Input], limits: &ImageLimits) -> Vec<Prepared> {
    let cfg = classifier.preprocess_config();
    chunk
        .par_iter()
        .map(|input| {
            let t = Instant::now();
            let r = match input {
                Input::File(path) => ahp_spec::preprocess::preprocess_file_with(path, cfg, limits)
                    .map(|p| p.data)
                    .map_err(|e| e.to_string()),
                Input::Unusable(_, why) => Err(why.clone()),
            };
            (r, t.elapsed().as_secs_f64() * 1e3)
        })
        .collect()
}

/// One model run on the `good` images: a prediction each (all the run's error if it failed).
fn run_batch(classifier: &Classifier, good: &[&Vec<f32>], top_k: usize) -> Vec<Prediction> {
    let n = good.len();
    let batch_result = if n == 0 {
        Ok(Vec::new())
    } else {
        let pixels: Vec<f32> = good.iter().flat_map(|p| p.iter().copied()).collect();
        classifier
            .classify_pixels(&pixels, n, top_k)
            .map_err(|e| e.to_string())
    };
    match batch_result {
        Ok(p) => p.into_iter().map(Ok).collect(),
        Err(e) => vec![Err(e); n],
    }
}

/// One outcome per input, in order: the next prediction for each preprocessed one, its own
/// error for the others.
fn outcomes(
    chunk: &[Input],
    prepared: Vec<Prepared>,
    predictions: Vec<Prediction>,
    run_share: f64,
) -> Vec<Outcome> {
    let mut predictions = predictions.into_iter();
    chunk
        .iter()
        .map(Input::path)
        .zip(prepared)
        .map(|(path, (r, ms))| match r {
            Ok(_) => Outcome {
                path: path.to_path_buf(),
                result: predictions.next().unwrap_or_else(|| {
                    Err(format!(
                        "{}: the model run returned fewer predictions than images",
                        path.display()
                    ))
                }),
                ms: ms + run_share,
            },
            Err(e) => Outcome {
                path: path.to_path_buf(),
                result: Err(e),
                ms,
            },
        })
        .collect()
}
