//! CLIP image preprocessing, identical in training, ONNX Runtime and the browser.
//!
//! Mirrors transformers' `CLIPImageProcessor` (the PIL one):
//! 1. convert to 8-bit RGB: gray is replicated, palettes are expanded, 16-bit samples are
//!    scaled to 8 bits, and images with transparency are alpha-composited onto white with
//!    Pillow's integer arithmetic (transformers >= 5 `convert_to_rgb`; 4.x dropped alpha);
//! 2. resize so the shortest side equals `shortest_edge`, the long side
//!    `int(shortest_edge * long / short)`, with Pillow's bicubic convolution (Catmull-Rom,
//!    support scaled when downsampling), rounded to 8 bits as Pillow does;
//! 3. center crop to `crop_height x crop_width` (zero padding if the image is smaller);
//! 4. multiply by `rescale_factor` (1/255) and normalize with the mean/std;
//! 5. output channel-major (CHW) f32.
//!
//! EXIF orientation is not applied, as transformers does not apply it either.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageReader, RgbImage};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SpecError};

/// OpenAI CLIP's normalization mean (RGB).
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// OpenAI CLIP's normalization standard deviation (RGB).
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// Preprocessing parameters (the fields of a Hugging Face `preprocessor_config.json` that
/// `CLIPImageProcessor` uses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreprocessConfig {
    /// Target length of the shortest side after resizing.
    pub shortest_edge: u32,
    /// Height of the center crop.
    pub crop_height: u32,
    /// Width of the center crop.
    pub crop_width: u32,
    /// Factor applied to 8-bit values before normalization (1/255).
    pub rescale_factor: f32,
    /// Per-channel mean.
    pub mean: [f32; 3],
    /// Per-channel standard deviation.
    pub std: [f32; 3],
}

impl PreprocessConfig {
    /// CLIP's defaults for a model whose input is `image_size x image_size`.
    pub fn clip(image_size: u32) -> Self {
        Self {
            shortest_edge: image_size,
            crop_height: image_size,
            crop_width: image_size,
            rescale_factor: 1.0 / 255.0,
            mean: CLIP_MEAN,
            std: CLIP_STD,
        }
    }

    /// Reads a Hugging Face `preprocessor_config.json` (as written by `CLIPImageProcessor`).
    ///
    /// Only the bicubic resample (`3`) is supported; steps switched off with `do_*: false` are
    /// rejected rather than silently applied.
    pub fn from_hf_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_hf_json(&text, path)
    }

    /// Parses the text of a `preprocessor_config.json`; `origin` names it in errors.
    pub fn from_hf_json(text: &str, origin: &Path) -> Result<Self> {
        let raw: HfPreprocessorConfig =
            serde_json::from_str(text).map_err(|e| SpecError::config(origin, e.to_string()))?;
        for (flag, value) in [
            ("do_resize", raw.do_resize),
            ("do_center_crop", raw.do_center_crop),
            ("do_rescale", raw.do_rescale),
            ("do_normalize", raw.do_normalize),
            ("do_convert_rgb", raw.do_convert_rgb),
        ] {
            if value == Some(false) {
                return Err(SpecError::config(
                    origin,
                    format!("{flag}: false is not supported (CLIP preprocessing applies it)"),
                ));
            }
        }
        if let Some(r) = raw.resample {
            if r != 3 {
                return Err(SpecError::config(
                    origin,
                    format!("resample: {r} is not supported (only 3 = bicubic)"),
                ));
            }
        }
        let shortest_edge = match raw.size {
            Some(SizeSpec::Int(s)) => s,
            Some(SizeSpec::Map {
                shortest_edge: Some(s),
                ..
            }) => s,
            Some(SizeSpec::Map { .. }) => {
                return Err(SpecError::config(
                    origin,
                    "size: only {\"shortest_edge\": N} is supported",
                ))
            }
            None => 224,
        };
        let (crop_height, crop_width) = match raw.crop_size {
            Some(SizeSpec::Int(s)) => (s, s),
            Some(SizeSpec::Map {
                height: Some(h),
                width: Some(w),
                ..
            }) => (h, w),
            Some(SizeSpec::Map { .. }) => {
                return Err(SpecError::config(
                    origin,
                    "crop_size: expected {\"height\": H, \"width\": W}",
                ))
            }
            None => (224, 224),
        };
        let cfg = Self {
            shortest_edge,
            crop_height,
            crop_width,
            rescale_factor: raw.rescale_factor.unwrap_or(1.0 / 255.0),
            mean: raw.image_mean.unwrap_or(CLIP_MEAN),
            std: raw.image_std.unwrap_or(CLIP_STD),
        };
        cfg.validate(origin)?;
        Ok(cfg)
    }

    fn validate(&self, origin: &Path) -> Result<()> {
        if self.shortest_edge == 0 || self.crop_height == 0 || self.crop_width == 0 {
            return Err(SpecError::config(origin, "size and crop_size must be > 0"));
        }
        if self.std.iter().any(|s| !s.is_finite() || *s <= 0.0) {
            return Err(SpecError::config(
                origin,
                format!("image_std must be positive, got {:?}", self.std),
            ));
        }
        Ok(())
    }

    /// A one-line description of the resize rule (stored in exported models' metadata).
    pub fn resize_rule(&self) -> String {
        format!(
            "shortest_edge={},bicubic,center_crop={}x{}",
            self.shortest_edge, self.crop_height, self.crop_width
        )
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SizeSpec {
    Int(u32),
    Map {
        shortest_edge: Option<u32>,
        height: Option<u32>,
        width: Option<u32>,
    },
}

#[derive(Deserialize)]
struct HfPreprocessorConfig {
    size: Option<SizeSpec>,
    crop_size: Option<SizeSpec>,
    rescale_factor: Option<f32>,
    image_mean: Option<[f32; 3]>,
    image_std: Option<[f32; 3]>,
    resample: Option<u32>,
    do_resize: Option<bool>,
    do_center_crop: Option<bool>,
    do_rescale: Option<bool>,
    do_normalize: Option<bool>,
    do_convert_rgb: Option<bool>,
}

/// A preprocessed image: `3 x height x width` f32 values, channel-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessed {
    /// CHW values.
    pub data: Vec<f32>,
    /// Rows.
    pub height: u32,
    /// Columns.
    pub width: u32,
}

/// Reads and decodes an image file. Errors name the file: unreadable, empty, unknown format,
/// corrupt or truncated data.
pub fn load_image(path: &Path) -> Result<DynamicImage> {
    let bytes = std::fs::read(path).map_err(|source| SpecError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_image(&bytes, &path.display().to_string())
}

/// Decodes an image from memory; `source_name` names it in errors.
pub fn decode_image(bytes: &[u8], source_name: &str) -> Result<DynamicImage> {
    if bytes.is_empty() {
        return Err(SpecError::image(source_name, "empty file (0 bytes)"));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| SpecError::image(source_name, format!("cannot read: {e}")))?;
    let Some(format) = reader.format() else {
        return Err(SpecError::image(
            source_name,
            "unsupported or unrecognized image format (supported: PNG, JPEG, GIF, BMP, WebP, TIFF)",
        ));
    };
    reader
        .decode()
        .map_err(|e| SpecError::image(source_name, format!("cannot decode {format:?} image: {e}")))
}

/// Converts any decoded image to 8-bit RGB as transformers' `convert_to_rgb` does: gray is
/// replicated, 16-bit and float samples are scaled to 8 bits, and an image with an alpha
/// channel (including palette images with a transparent entry) is composited onto an opaque
/// white background.
pub fn to_rgb8(image: &DynamicImage) -> RgbImage {
    match image {
        DynamicImage::ImageRgb8(rgb) => rgb.clone(),
        other if other.color().has_alpha() => composite_on_white(&other.to_rgba8()),
        other => other.to_rgb8(),
    }
}

/// Pillow's `alpha_composite(white, image)` (7-bit fixed point, `AlphaComposite.c`) specialised
/// to an opaque white background: `out = round((c * a + 255 * (255 - a)) / 255)` with Pillow's
/// exact rounding.
pub fn composite_on_white(rgba: &image::RgbaImage) -> RgbImage {
    const PRECISION_BITS: u32 = 7;
    fn shift_div255(v: u32) -> u32 {
        ((v >> 8) + v) >> 8
    }
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        if a == 0 {
            return image::Rgb([255, 255, 255]);
        }
        let a = u32::from(a);
        let coef1 = a << PRECISION_BITS;
        let coef2 = (255 - a) << PRECISION_BITS;
        let blend = |c: u8| -> u8 {
            let tmp = u32::from(c) * coef1 + 255 * coef2;
            (shift_div255(tmp + (0x80 << PRECISION_BITS)) >> PRECISION_BITS) as u8
        };
        image::Rgb([blend(r), blend(g), blend(b)])
    })
}

/// `(height, width)` after resizing the shortest side to `shortest_edge`, with transformers'
/// rule: the long side is `int(shortest_edge * long / short)` (truncated).
pub fn resize_output_size(height: u32, width: u32, shortest_edge: u32) -> (u32, u32) {
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    let new_long = (f64::from(shortest_edge) * f64::from(long) / f64::from(short)) as u32;
    let new_long = new_long.max(1);
    if width <= height {
        (new_long, shortest_edge)
    } else {
        (shortest_edge, new_long)
    }
}

/// Bicubic resize of an 8-bit RGB image, identical to Pillow's (see [`crate::resample`]).
pub fn resize_bicubic(image: &RgbImage, height: u32, width: u32) -> Result<RgbImage> {
    if image.width() == width && image.height() == height {
        return Ok(image.clone());
    }
    let out = crate::resample::resize_u8(
        image.as_raw(),
        image.width() as usize,
        image.height() as usize,
        3,
        width as usize,
        height as usize,
    );
    RgbImage::from_raw(width, height, out)
        .ok_or_else(|| SpecError::image("resize", "resized buffer has the wrong size"))
}

/// Center crop to `height x width` (transformers' offsets: `(orig - crop) / 2` truncated),
/// padding with zeros where the image is smaller than the crop.
pub fn center_crop(image: &RgbImage, height: u32, width: u32) -> RgbImage {
    let (ih, iw) = (i64::from(image.height()), i64::from(image.width()));
    let top = (ih - i64::from(height)) / 2;
    let left = (iw - i64::from(width)) / 2;
    let mut out = RgbImage::new(width, height);
    for y in 0..height {
        let sy = top + i64::from(y);
        if !(0..ih).contains(&sy) {
            continue;
        }
        for x in 0..width {
            let sx = left + i64::from(x);
            if (0..iw).contains(&sx) {
                out.put_pixel(x, y, *image.get_pixel(sx as u32, sy as u32));
            }
        }
    }
    out
}

/// Rescales and normalizes an 8-bit RGB image into CHW f32.
pub fn normalize(image: &RgbImage, cfg: &PreprocessConfig) -> Preprocessed {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let plane = w * h;
    let mut data = vec![0f32; 3 * plane];
    for (i, px) in image.pixels().enumerate() {
        for c in 0..3 {
            let v = f32::from(px.0[c]) * cfg.rescale_factor;
            data[c * plane + i] = (v - cfg.mean[c]) / cfg.std[c];
        }
    }
    Preprocessed {
        data,
        height: h as u32,
        width: w as u32,
    }
}

/// The full CLIP preprocessing of a decoded image.
pub fn preprocess(image: &DynamicImage, cfg: &PreprocessConfig) -> Result<Preprocessed> {
    let rgb = to_rgb8(image);
    if rgb.width() == 0 || rgb.height() == 0 {
        return Err(SpecError::image("image", "image has zero width or height"));
    }
    let (h, w) = resize_output_size(rgb.height(), rgb.width(), cfg.shortest_edge);
    let resized = resize_bicubic(&rgb, h, w)?;
    let cropped = center_crop(&resized, cfg.crop_height, cfg.crop_width);
    Ok(normalize(&cropped, cfg))
}

/// Reads, decodes and preprocesses an image file.
pub fn preprocess_file(path: &Path, cfg: &PreprocessConfig) -> Result<Preprocessed> {
    let image = load_image(path)?;
    preprocess(&image, cfg).map_err(|e| match e {
        SpecError::Image { message, .. } => SpecError::image(path.display().to_string(), message),
        other => other,
    })
}

/// Preprocesses a tightly packed RGBA8 buffer (as a browser canvas gives it); transparent pixels are
/// composited onto white as for decoded images.
pub fn preprocess_rgba(
    rgba: &[u8],
    width: u32,
    height: u32,
    cfg: &PreprocessConfig,
) -> Result<Preprocessed> {
    let expected = width as usize * height as usize * 4;
    if width == 0 || height == 0 || rgba.len() != expected {
        return Err(SpecError::image(
            "rgba buffer",
            format!(
                "expected {width}x{height}x4 = {expected} bytes, got {}",
                rgba.len()
            ),
        ));
    }
    let image = image::RgbaImage::from_raw(width, height, rgba.to_vec())
        .ok_or_else(|| SpecError::image("rgba buffer", "buffer does not match its size"))?;
    preprocess(&DynamicImage::ImageRgba8(image), cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_size_follows_transformers() {
        assert_eq!(resize_output_size(23, 37, 32), (32, 51));
        assert_eq!(resize_output_size(52, 40, 32), (41, 32));
        assert_eq!(resize_output_size(48, 48, 24), (24, 24));
        assert_eq!(resize_output_size(480, 640, 224), (224, 298));
    }

    #[test]
    fn center_crop_pads_small_images() {
        let img = RgbImage::from_pixel(2, 2, image::Rgb([9, 9, 9]));
        let out = center_crop(&img, 4, 4);
        assert_eq!(out.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(out.get_pixel(1, 1).0, [9, 9, 9]);
        assert_eq!(out.get_pixel(2, 2).0, [9, 9, 9]);
        assert_eq!(out.get_pixel(3, 3).0, [0, 0, 0]);
    }

    #[test]
    fn sixteen_bit_equals_eight_bit() -> Result<()> {
        let cfg = PreprocessConfig::clip(8);
        let rgb8 = RgbImage::from_fn(11, 7, |x, y| {
            image::Rgb([(x * 20) as u8, (y * 30) as u8, 77])
        });
        let rgb16 = image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(11, 7, |x, y| {
            let p = rgb8.get_pixel(x, y).0;
            image::Rgb([
                u16::from(p[0]) * 257,
                u16::from(p[1]) * 257,
                u16::from(p[2]) * 257,
            ])
        });
        let a = preprocess(&DynamicImage::ImageRgb8(rgb8), &cfg)?;
        let b = preprocess(&DynamicImage::ImageRgb16(rgb16), &cfg)?;
        assert_eq!(a, b);
        Ok(())
    }

    #[test]
    fn rgba_buffer_size_is_checked() {
        let cfg = PreprocessConfig::clip(8);
        let err = preprocess_rgba(&[0; 10], 2, 2, &cfg).expect_err("short buffer");
        assert!(err.to_string().contains("16 bytes"), "{err}");
    }

    #[test]
    fn bad_bytes_are_named_errors() {
        let err = decode_image(&[], "x.png").expect_err("empty");
        assert!(err.to_string().contains("x.png: empty file"), "{err}");
        let err = decode_image(b"hello world, not an image", "y.png").expect_err("text");
        assert!(err.to_string().contains("y.png"), "{err}");
    }

    #[test]
    fn hf_preprocessor_config() -> Result<()> {
        let cfg = PreprocessConfig::from_hf_json(
            r#"{"crop_size": {"height": 32, "width": 32}, "do_center_crop": true, "resample": 3,
                "size": {"shortest_edge": 32}, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}"#,
            Path::new("preprocessor_config.json"),
        )?;
        assert_eq!(cfg.shortest_edge, 32);
        assert_eq!(cfg.mean, [0.5; 3]);
        let err = PreprocessConfig::from_hf_json(r#"{"resample": 2}"#, Path::new("p.json"))
            .expect_err("bilinear");
        assert!(err.to_string().contains("resample"), "{err}");
        Ok(())
    }
}
