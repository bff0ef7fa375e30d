//! Training augmentation: torchvision's `RandomResizedCrop` parameters, bicubic resize,
//! horizontal flip and CLIP normalization.

use ahp_spec::preprocess::{normalize, resize_bicubic, PreprocessConfig, Preprocessed};
use image::RgbImage;
use rand::Rng;

use super::batch::in_memory_image_error;
use crate::error::{DataError, Result};

/// Training augmentation parameters (torchvision `RandomResizedCrop` + `RandomHorizontalFlip`).
#[derive(Debug, Clone, PartialEq)]
pub struct AugmentConfig {
    /// Range of the crop's area as a fraction of the image's (default `0.7..=1.0`).
    pub scale: (f64, f64),
    /// Range of the crop's aspect ratio, width / height (default `3/4..=4/3`, sampled
    /// log-uniformly).
    pub ratio: (f64, f64),
    /// Probability of a horizontal flip (default 0.5).
    pub flip_probability: f64,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            scale: (0.7, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            flip_probability: 0.5,
        }
    }
}

impl AugmentConfig {
    /// Checks the ranges; errors name the field.
    pub fn validate(&self) -> Result<()> {
        let (s0, s1) = self.scale;
        if !(s0.is_finite() && s1.is_finite() && 0.0 < s0 && s0 <= s1 && s1 <= 1.0) {
            return Err(DataError::option(
                "augment.scale",
                format!("({s0}, {s1}) must satisfy 0 < min <= max <= 1"),
            ));
        }
        let (r0, r1) = self.ratio;
        if !(r0.is_finite() && r1.is_finite() && 0.0 < r0 && r0 <= r1) {
            return Err(DataError::option(
                "augment.ratio",
                format!("({r0}, {r1}) must satisfy 0 < min <= max"),
            ));
        }
        if !(0.0..=1.0).contains(&self.flip_probability) {
            return Err(DataError::option(
                "augment.flip_probability",
                format!("{} is not in [0, 1]", self.flip_probability),
            ));
        }
        Ok(())
    }
}

/// A crop rectangle in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

fn uniform(rng: &mut impl Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// torchvision's `RandomResizedCrop.get_params`: up to 10 tries of a random area fraction in
/// `scale` and a log-uniform aspect ratio in `ratio`; if none fits, a center crop with the
/// aspect ratio clamped to `ratio`. Rounding is Python's (half to even).
pub fn random_resized_crop_params(
    width: u32,
    height: u32,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut impl Rng,
) -> CropBox {
    let (wf, hf) = (f64::from(width), f64::from(height));
    let area = wf * hf;
    let (lr0, lr1) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target_area = area * uniform(rng, scale.0, scale.1);
        let aspect = uniform(rng, lr0, lr1).exp();
        let w = (target_area * aspect).sqrt().round_ties_even();
        let h = (target_area / aspect).sqrt().round_ties_even();
        if w > 0.0 && w <= wf && h > 0.0 && h <= hf {
            let (w, h) = (w as u32, h as u32);
            let y = rng.random_range(0..=height - h);
            let x = rng.random_range(0..=width - w);
            return CropBox {
                x,
                y,
                width: w,
                height: h,
            };
        }
    }
    center_crop(width, height, ratio)
}

/// The fallback of [`random_resized_crop_params`]: the whole image, cropped in the middle to
/// bring its aspect ratio into `ratio`.
fn center_crop(width: u32, height: u32, ratio: (f64, f64)) -> CropBox {
    let (wf, hf) = (f64::from(width), f64::from(height));
    let in_ratio = wf / hf;
    let (w, h) = if in_ratio < ratio.0 {
        (
            width,
            ((wf / ratio.0).round_ties_even() as u32).clamp(1, height),
        )
    } else if in_ratio > ratio.1 {
        (
            ((hf * ratio.1).round_ties_even() as u32).clamp(1, width),
            height,
        )
    } else {
        (width, height)
    };
    CropBox {
        x: (width - w) / 2,
        y: (height - h) / 2,
        width: w,
        height: h,
    }
}

/// Training augmentation of one RGB image: random resized crop ([`random_resized_crop_params`]),
/// bicubic resize of the crop to `crop_height x crop_width` (ahp-spec's `resize_bicubic`),
/// horizontal flip with probability `flip_probability`, then ahp-spec's `normalize`.
pub fn augment(
    image: &RgbImage,
    pre: &PreprocessConfig,
    aug: &AugmentConfig,
    rng: &mut impl Rng,
) -> Result<Preprocessed> {
    if image.width() == 0 || image.height() == 0 {
        return Err(in_memory_image_error("image has zero width or height"));
    }
    let b = random_resized_crop_params(image.width(), image.height(), aug.scale, aug.ratio, rng);
    let crop = image::imageops::crop_imm(image, b.x, b.y, b.width, b.height).to_image();
    let mut resized =
        resize_bicubic(&crop, pre.crop_height, pre.crop_width).map_err(in_memory_image_error)?;
    if rng.random::<f64>() < aug.flip_probability {
        image::imageops::flip_horizontal_in_place(&mut resized);
    }
    Ok(normalize(&resized, pre))
}

/// Photometric augmentation in the manner of torchvision's `ColorJitter` (brightness, contrast,
/// saturation) and `RandomGrayscale`, for artwork whose colours are part of its style. Unlike
/// torchvision, the three are applied in a fixed order and in f32 (rounded to 8 bits once, at
/// the end), and grey is ITU-R 601 luma (0.299, 0.587, 0.114).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ColorJitter {
    /// Brightness factor drawn from `[1 - b, 1 + b]` (0 = off).
    pub brightness: f64,
    /// Contrast factor drawn from `[1 - c, 1 + c]`, around the image's mean grey (0 = off).
    pub contrast: f64,
    /// Saturation factor drawn from `[1 - s, 1 + s]`, towards each pixel's grey (0 = off).
    pub saturation: f64,
    /// Probability of turning the image grey (ITU-R 601 luma, as PIL's `L`).
    pub grayscale_probability: f64,
}

impl Default for ColorJitter {
    /// Brightness, contrast and saturation 0.3, grayscale 0.2.
    fn default() -> Self {
        Self {
            brightness: 0.3,
            contrast: 0.3,
            saturation: 0.3,
            grayscale_probability: 0.2,
        }
    }
}

impl ColorJitter {
    /// Checks the ranges; errors name the field.
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("color_jitter.brightness", self.brightness),
            ("color_jitter.contrast", self.contrast),
            ("color_jitter.saturation", self.saturation),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(DataError::option(field, format!("{v} is not in [0, 1]")));
            }
        }
        if !(0.0..=1.0).contains(&self.grayscale_probability) {
            return Err(DataError::option(
                "color_jitter.grayscale_probability",
                format!("{} is not in [0, 1]", self.grayscale_probability),
            ));
        }
        Ok(())
    }

    /// Applies the jitter in place: brightness, contrast, saturation in that order (each factor
    /// drawn even when its range is 0, so the random stream does not depend on the settings'
    /// values), then grayscale with its probability.
    pub fn apply(&self, image: &mut RgbImage, rng: &mut impl Rng) {
        let b = uniform(rng, 1.0 - self.brightness, 1.0 + self.brightness) as f32;
        let c = uniform(rng, 1.0 - self.contrast, 1.0 + self.contrast) as f32;
        let s = uniform(rng, 1.0 - self.saturation, 1.0 + self.saturation) as f32;
        let grey = rng.random::<f64>() < self.grayscale_probability;
        let luma = |p: [f32; 3]| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
        let mut px: Vec<[f32; 3]> = image
            .pixels()
            .map(|p| [p[0], p[1], p[2]].map(|v| (f32::from(v) * b).clamp(0.0, 255.0)))
            .collect();
        let mean = px.iter().map(|p| luma(*p)).sum::<f32>() / px.len().max(1) as f32;
        for p in &mut px {
            *p = p.map(|v| (mean + c * (v - mean)).clamp(0.0, 255.0));
            let l = luma(*p);
            *p = p.map(|v| (l + s * (v - l)).clamp(0.0, 255.0));
            if grey {
                *p = [luma(*p); 3];
            }
        }
        for (dst, p) in image.pixels_mut().zip(px) {
            dst.0 = p.map(|v| v.round() as u8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn crop_params_respect_scale_and_ratio() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..500 {
            let b = random_resized_crop_params(64, 48, (0.7, 1.0), (0.75, 4.0 / 3.0), &mut rng);
            assert!(b.x + b.width <= 64 && b.y + b.height <= 48, "{b:?}");
            let frac = f64::from(b.width * b.height) / f64::from(64 * 48);
            // Rounding to whole pixels moves the area slightly outside the nominal range.
            assert!((0.66..=1.0).contains(&frac), "{b:?} area {frac}");
            let r = f64::from(b.width) / f64::from(b.height);
            assert!((0.72..=1.37).contains(&r), "{b:?} ratio {r}");
        }
    }

    #[test]
    fn color_jitter_keeps_size_and_greys_out() {
        let mut img = RgbImage::from_fn(8, 8, |x, y| {
            image::Rgb([(x * 30) as u8, (y * 30) as u8, 200])
        });
        let before = img.clone();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let always_grey = ColorJitter {
            grayscale_probability: 1.0,
            ..ColorJitter::default()
        };
        always_grey.apply(&mut img, &mut rng);
        assert_eq!(img.dimensions(), (8, 8));
        assert_ne!(img, before);
        assert!(img.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));
        let mut same = before.clone();
        let off = ColorJitter {
            brightness: 0.0,
            contrast: 0.0,
            saturation: 0.0,
            grayscale_probability: 0.0,
        };
        off.apply(&mut same, &mut rng);
        assert_eq!(same, before);
        assert!(ColorJitter {
            brightness: 1.5,
            ..off.clone()
        }
        .validate()
        .is_err());
        assert!(ColorJitter {
            grayscale_probability: -0.1,
            ..off
        }
        .validate()
        .is_err());
    }

    #[test]
    fn crop_falls_back_to_center_crop_with_clamped_ratio() {
        // A 100x10 strip can never hold a 3/4..4/3 crop of >= 70% of its area.
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let b = random_resized_crop_params(100, 10, (0.7, 1.0), (0.75, 4.0 / 3.0), &mut rng);
        assert_eq!(
            b,
            CropBox {
                x: 43,
                y: 0,
                width: 13,
                height: 10
            }
        );
    }
}
