//! Loader settings.

use ahp_spec::preprocess::PreprocessConfig;

use super::augment::AugmentConfig;
use crate::error::{DataError, Result};

/// Loader settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LoaderConfig {
    /// Images per batch (before skipping unreadable ones).
    pub batch_size: usize,
    /// Seed of the epoch shuffles and augmentations.
    pub seed: u64,
    /// The model's preprocessing; batches are `crop_height x crop_width`.
    pub preprocess: PreprocessConfig,
    /// Training augmentation; `None` applies plain CLIP preprocessing instead.
    pub augment: Option<AugmentConfig>,
    /// Print a warning on stderr for every skipped image.
    pub warn_on_skip: bool,
}

impl LoaderConfig {
    /// Default augmentation, warnings on.
    pub fn new(batch_size: usize, seed: u64, preprocess: PreprocessConfig) -> Self {
        Self {
            batch_size,
            seed,
            preprocess,
            augment: Some(AugmentConfig::default()),
            warn_on_skip: true,
        }
    }
}

/// Batches need a non-empty crop.
pub(super) fn check_crop_size(cfg: &PreprocessConfig) -> Result<()> {
    if cfg.crop_height == 0 || cfg.crop_width == 0 {
        return Err(DataError::option("preprocess", "crop size must be > 0"));
    }
    Ok(())
}
