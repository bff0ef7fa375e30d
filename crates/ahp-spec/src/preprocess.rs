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

use std::borrow::Cow;

use image::{DynamicImage, ImageFormat, ImageReader, RgbImage};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SpecError};

/// OpenAI CLIP's normalization mean (RGB).
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// OpenAI CLIP's normalization standard deviation (RGB).
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// Largest `shortest_edge`, crop height and crop width accepted from a config or a model's
/// metadata (CLIP models use 224 to 448): larger values are refused rather than allocated.
pub const MAX_IMAGE_SIDE: u32 = 4096;

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
        let sides = [self.shortest_edge, self.crop_height, self.crop_width];
        if sides.iter().any(|s| !(1..=MAX_IMAGE_SIDE).contains(s)) {
            return Err(SpecError::config(
                origin,
                format!(
                    "size and crop_size must be from 1 to {MAX_IMAGE_SIDE}, got shortest_edge {}, crop {}x{}",
                    self.shortest_edge, self.crop_height, self.crop_width
                ),
            ));
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

/// Bounds on the images ahp reads and decodes, against decompression and aspect-ratio bombs
/// (a 19 KB PNG can declare 1 x 10,000,000 pixels). Preprocessing itself never materializes
/// more than the center crop of the resized image, so these two bound a whole image's cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageLimits {
    /// Largest image file read, in bytes (default 64 MiB).
    pub max_file_bytes: u64,
    /// Largest decoded image, width x height in pixels (default 40,000,000: a 40-megapixel
    /// photo). Checked from the file's header, before any pixel is decoded.
    pub max_pixels: u64,
    /// Largest ratio of the long side to the short side (default 100: panoramas pass, a
    /// 1 x 10,000,000 aspect-ratio bomb does not). Checked from the header too.
    pub max_aspect_ratio: u32,
}

impl Default for ImageLimits {
    fn default() -> Self {
        Self {
            max_file_bytes: 64 << 20,
            max_pixels: 40_000_000,
            max_aspect_ratio: 100,
        }
    }
}

impl ImageLimits {
    /// Bytes the decoder may allocate: enough for the largest allowed image at 16 bytes per
    /// pixel (RGBA f32), never less than 64 MiB.
    fn max_alloc(&self) -> u64 {
        self.max_pixels.saturating_mul(16).max(64 << 20)
    }
}

/// Reads and decodes an image file within the default [`ImageLimits`]. Errors name the file:
/// unreadable, not a regular file, empty, too large, unknown format, corrupt or truncated.
pub fn load_image(path: &Path) -> Result<DynamicImage> {
    load_image_with(path, &ImageLimits::default())
}

/// [`load_image`] within `limits`.
pub fn load_image_with(path: &Path, limits: &ImageLimits) -> Result<DynamicImage> {
    let bytes = crate::files::read_regular(path, limits.max_file_bytes)?;
    decode_image_with(&bytes, &path.display().to_string(), limits)
}

/// Decodes an image from memory within the default [`ImageLimits`]; `source_name` names it in
/// errors.
pub fn decode_image(bytes: &[u8], source_name: &str) -> Result<DynamicImage> {
    decode_image_with(bytes, source_name, &ImageLimits::default())
}

/// [`decode_image`] within `limits`: the declared size is checked before decoding, the decoder's
/// allocations are capped, and a JPEG without its end-of-image marker is refused as truncated
/// (as Pillow does).
pub fn decode_image_with(
    bytes: &[u8],
    source_name: &str,
    limits: &ImageLimits,
) -> Result<DynamicImage> {
    if bytes.is_empty() {
        return Err(SpecError::image(source_name, "empty file (0 bytes)"));
    }
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(SpecError::image(
            source_name,
            format!(
                "{} bytes is over the limit of {} bytes per image (--max-image-bytes)",
                bytes.len(),
                limits.max_file_bytes
            ),
        ));
    }
    let format = guess_format(bytes, source_name)?;
    check_declared_size(bytes, format, source_name, limits)?;
    if format == ImageFormat::Jpeg && !has_jpeg_end(bytes) {
        return Err(SpecError::image(
            source_name,
            "truncated JPEG (no end-of-image marker)",
        ));
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_alloc = Some(limits.max_alloc());
    reader.limits(decoder_limits);
    reader
        .decode()
        .map_err(|e| SpecError::image(source_name, format!("cannot decode {format:?} image: {e}")))
}

fn guess_format(bytes: &[u8], source_name: &str) -> Result<ImageFormat> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| SpecError::image(source_name, format!("cannot read: {e}")))?;
    reader.format().ok_or_else(|| {
        SpecError::image(
            source_name,
            "unsupported or unrecognized image format (supported: PNG, JPEG, GIF, BMP, WebP, TIFF)",
        )
    })
}

/// Refuses images whose header declares more than `limits.max_pixels` pixels (or none), or a
/// more extreme aspect ratio than `limits.max_aspect_ratio`.
fn check_declared_size(
    bytes: &[u8],
    format: ImageFormat,
    source_name: &str,
    limits: &ImageLimits,
) -> Result<()> {
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|e| {
            SpecError::image(source_name, format!("cannot read {format:?} header: {e}"))
        })?;
    let pixels = u64::from(width) * u64::from(height);
    if pixels == 0 {
        return Err(SpecError::image(
            source_name,
            format!("image has zero width or height ({width}x{height})"),
        ));
    }
    let (short, long) = (width.min(height), width.max(height));
    if u64::from(long) > u64::from(short) * u64::from(limits.max_aspect_ratio) {
        return Err(SpecError::image(
            source_name,
            format!(
                "{width}x{height} has an aspect ratio over the limit of {}:1 (--max-aspect-ratio)",
                limits.max_aspect_ratio
            ),
        ));
    }
    if pixels > limits.max_pixels {
        return Err(SpecError::image(
            source_name,
            format!(
                "{width}x{height} = {pixels} pixels is over the limit of {} pixels per image (--max-image-pixels)",
                limits.max_pixels
            ),
        ));
    }
    Ok(())
}

/// Whether a JPEG stream has an end-of-image marker (`FF D9`) after its first scan. The marker
/// segments before the scan (EXIF thumbnails, ICC profiles: they may hold an `FF D9` of their
/// own) are skipped by their lengths; entropy-coded data stuffs every `FF` byte, so after the
/// scan starts `FF D9` only appears as the marker. Trailing bytes after it are allowed.
fn has_jpeg_end(bytes: &[u8]) -> bool {
    let mut i = 2; // after SOI
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return false;
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        if marker == 0xDA {
            let scan = (i + 2 + len).min(bytes.len());
            return bytes[scan..].windows(2).any(|w| w == [0xFF, 0xD9]);
        }
        i += 2 + len;
    }
    false
}

/// Converts any decoded image to 8-bit RGB as transformers' `convert_to_rgb` does: gray is
/// replicated, 16-bit and float samples are scaled to 8 bits, and an image with an alpha
/// channel (including palette images with a transparent entry) is composited onto an opaque
/// white background.
pub fn to_rgb8(image: &DynamicImage) -> RgbImage {
    rgb8(image).into_owned()
}

/// [`to_rgb8`] without copying an image that already is 8-bit RGB.
fn rgb8(image: &DynamicImage) -> Cow<'_, RgbImage> {
    match image {
        DynamicImage::ImageRgb8(rgb) => Cow::Borrowed(rgb),
        other if other.color().has_alpha() => Cow::Owned(composite_on_white(&other.to_rgba8())),
        other => Cow::Owned(other.to_rgb8()),
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
/// rule: the long side is `int(shortest_edge * long / short)` (truncated). `None` when the long
/// side would not fit Pillow's 32-bit signed sizes (an extreme aspect ratio).
pub fn resize_output_size(height: u32, width: u32, shortest_edge: u32) -> Option<(u32, u32)> {
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    let new_long = (f64::from(shortest_edge) * f64::from(long) / f64::from(short.max(1))).max(1.0);
    if new_long > f64::from(i32::MAX) {
        return None;
    }
    let new_long = new_long as u32;
    Some(if width <= height {
        (new_long, shortest_edge)
    } else {
        (shortest_edge, new_long)
    })
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

/// [`resize_bicubic`] to `height x width` followed by [`center_crop`] to `crop_h x crop_w`, with
/// the same pixels, computing only the part of the resized image the crop keeps.
pub fn resize_and_center_crop(
    image: &RgbImage,
    height: u32,
    width: u32,
    crop_h: u32,
    crop_w: u32,
) -> RgbImage {
    // The crop's rows/columns in the resized image, clipped to it (the rest is zero padding).
    let span = |size: u32, crop: u32| {
        let first = (i64::from(size) - i64::from(crop)) / 2;
        let lo = first.max(0);
        let hi = (first + i64::from(crop)).min(i64::from(size));
        (first, lo as usize, (hi - lo).max(0) as usize)
    };
    let (top, y0, rows) = span(height, crop_h);
    let (left, x0, cols) = span(width, crop_w);
    let mut out = RgbImage::new(crop_w, crop_h);
    if rows == 0 || cols == 0 {
        return out;
    }
    let window = crate::resample::Window {
        x: x0,
        y: y0,
        width: cols,
        height: rows,
    };
    let part = crate::resample::resize_window_u8(
        image.as_raw(),
        image.width() as usize,
        image.height() as usize,
        3,
        width as usize,
        height as usize,
        window,
    );
    let (dy, dx) = ((y0 as i64 - top) as usize, (x0 as i64 - left) as usize);
    let stride = crop_w as usize * 3;
    let buf: &mut [u8] = &mut out;
    for r in 0..rows {
        let at = (dy + r) * stride + dx * 3;
        buf[at..at + cols * 3].copy_from_slice(&part[r * cols * 3..(r + 1) * cols * 3]);
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
///
/// Only the center crop of the resized image is computed (same pixels as resizing the whole
/// image, then cropping), so an extreme aspect ratio costs no more than a square image.
pub fn preprocess(image: &DynamicImage, cfg: &PreprocessConfig) -> Result<Preprocessed> {
    let rgb = rgb8(image);
    if rgb.width() == 0 || rgb.height() == 0 {
        return Err(SpecError::image("image", "image has zero width or height"));
    }
    let (h, w) = resize_output_size(rgb.height(), rgb.width(), cfg.shortest_edge).ok_or_else(
        || {
            SpecError::image(
                "image",
                format!(
                    "aspect ratio {}x{} is too extreme: the resized long side would exceed {} pixels",
                    rgb.width(),
                    rgb.height(),
                    i32::MAX
                ),
            )
        },
    )?;
    let cropped = resize_and_center_crop(&rgb, h, w, cfg.crop_height, cfg.crop_width);
    Ok(normalize(&cropped, cfg))
}

/// Reads, decodes and preprocesses an image file within the default [`ImageLimits`].
pub fn preprocess_file(path: &Path, cfg: &PreprocessConfig) -> Result<Preprocessed> {
    preprocess_file_with(path, cfg, &ImageLimits::default())
}

/// [`preprocess_file`] within `limits`.
pub fn preprocess_file_with(
    path: &Path,
    cfg: &PreprocessConfig,
    limits: &ImageLimits,
) -> Result<Preprocessed> {
    let image = load_image_with(path, limits)?;
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

/// File extensions (lowercase, without the dot) of the image files the commands pick up when
/// they walk a directory; files named explicitly are always tried, whatever their extension.
pub const IMAGE_EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff"];

#[cfg(test)]
mod tests {
    use super::*;
    use image::ImageEncoder;

    #[test]
    fn output_size_follows_transformers() {
        assert_eq!(resize_output_size(23, 37, 32), Some((32, 51)));
        assert_eq!(resize_output_size(52, 40, 32), Some((41, 32)));
        assert_eq!(resize_output_size(48, 48, 24), Some((24, 24)));
        assert_eq!(resize_output_size(480, 640, 224), Some((224, 298)));
        assert_eq!(resize_output_size(40_000_000, 1, 224), None);
    }

    #[test]
    fn cropped_window_equals_resize_then_crop() -> Result<()> {
        let img = RgbImage::from_fn(23, 9, |x, y| {
            image::Rgb([(x * 11) as u8, (y * 27) as u8, ((x + y) * 5) as u8])
        });
        for (h, w, ch, cw) in [
            (16, 40, 16, 16),
            (16, 40, 20, 44),
            (5, 7, 3, 9),
            (9, 23, 9, 23),
        ] {
            let full = center_crop(&resize_bicubic(&img, h, w)?, ch, cw);
            assert_eq!(
                resize_and_center_crop(&img, h, w, ch, cw),
                full,
                "{h}x{w} -> {ch}x{cw}"
            );
        }
        Ok(())
    }

    #[test]
    fn aspect_ratio_bomb_is_cheap() -> Result<()> {
        // The issue's 1 x 10,000,000 image (as decoded): resized to 32 x 320,000,000, cropped.
        let tall = DynamicImage::ImageLuma8(image::GrayImage::new(1, 10_000_000));
        let out = preprocess(&tall, &PreprocessConfig::clip(32))?;
        assert_eq!(out.data.len(), 3 * 32 * 32);
        Ok(())
    }

    #[test]
    fn declared_size_is_checked_before_decoding() {
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(&[0u8; 3 * 40], 4, 10, image::ExtendedColorType::Rgb8)
            .expect("encode");
        let limits = ImageLimits {
            max_pixels: 39,
            ..ImageLimits::default()
        };
        let err = decode_image_with(&png, "tall.png", &limits).expect_err("over budget");
        assert!(
            err.to_string()
                .contains("4x10 = 40 pixels is over the limit of 39"),
            "{err}"
        );
        let small = ImageLimits {
            max_file_bytes: 10,
            ..ImageLimits::default()
        };
        let err = decode_image_with(&png, "tall.png", &small).expect_err("over bytes");
        assert!(err.to_string().contains("limit of 10 bytes"), "{err}");
        let narrow = ImageLimits {
            max_aspect_ratio: 2,
            ..ImageLimits::default()
        };
        let err = decode_image_with(&png, "tall.png", &narrow).expect_err("too narrow");
        assert!(
            err.to_string()
                .contains("aspect ratio over the limit of 2:1"),
            "{err}"
        );
        assert!(decode_image(&png, "ok.png").is_ok());
    }

    #[test]
    fn truncated_jpeg_is_refused() {
        let img = RgbImage::from_fn(16, 16, |x, y| {
            image::Rgb([(x * 16) as u8, (y * 16) as u8, 9])
        });
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
            .write_image(img.as_raw(), 16, 16, image::ExtendedColorType::Rgb8)
            .expect("encode");
        assert!(decode_image(&jpeg, "whole.jpg").is_ok());
        let err = decode_image(&jpeg[..jpeg.len() - 40], "cut.jpg").expect_err("truncated");
        assert!(err.to_string().contains("cut.jpg: truncated JPEG"), "{err}");
        // An `FF D9` inside a segment before the scan (as in an EXIF thumbnail) does not count.
        let mut with_app = jpeg[..2].to_vec();
        with_app.extend_from_slice(&[0xFF, 0xE1, 0x00, 0x06, 0xFF, 0xD9, 0x00, 0x00]);
        with_app.extend_from_slice(&jpeg[2..jpeg.len() - 40]);
        let err = decode_image(&with_app, "exif.jpg").expect_err("truncated with a thumbnail");
        assert!(err.to_string().contains("truncated JPEG"), "{err}");
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
