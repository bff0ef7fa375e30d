//! Named numeric tolerances (absolute, on f32 outputs). Tests and validators use these names so
//! a change of tolerance is one reviewed line.

/// ahp-model (candle, f32) vs. transformers (PyTorch, f32) on `image_embeds`, `text_embeds` and
/// `logits_per_image`.
pub const MODEL_VS_TRANSFORMERS: f32 = 1e-4;

/// ahp-spec preprocessing vs. transformers' `CLIPImageProcessor` (Pillow backend) for JPEG
/// sources, in normalized units.
///
/// Not zero because the JPEG decoders differ: the `image` crate (zune-jpeg) and Pillow's
/// libjpeg-turbo round their IDCT differently, a couple of 8-bit levels on some pixels (measured
/// on the fixtures: 2 levels, 0.029 after normalization; one level is 1/255/std ≈ 0.0146). The
/// tolerance is 4 levels.
pub const PREPROCESS_VS_PIL: f32 = 0.06;

/// [`PREPROCESS_VS_PIL`] for lossless sources (PNG: gray, gray+alpha, RGBA, palette, RGB,
/// upscaled and downscaled). The resize and alpha compositing reproduce Pillow's integer
/// arithmetic bit for bit, so only float rounding remains: rescale+normalize in f32 here vs.
/// numpy's f64 rescale then f32 normalize (measured 4.8e-7).
pub const PREPROCESS_VS_PIL_LOSSLESS: f32 = 1e-6;

/// An exported ONNX graph (run with tract or ONNX Runtime, f32) vs. the candle adapted model
/// (f32): absolute on `image_embeds`, and on `logits` divided by `max(1, exp(logit_scale))`
/// (cosine units, so the check does not get stricter for a model with a large logit scale).
/// Measured on the fixtures: a few 1e-6 on logits, a few 1e-7 on embeddings.
pub const ONNX_VS_CANDLE: f32 = 1e-4;

/// As [`ONNX_VS_CANDLE`] for an `--fp16` export (f16 weights and activations vs. f32).
/// Measured on the fixtures: 7e-3 on logits, 1.6e-3 on embeddings.
pub const ONNX_FP16_VS_CANDLE: f32 = 2e-2;
