//! Names shared by the exporter and the runtimes: ONNX input/output names and the keys of the
//! `ahp.*` metadata properties written into exported models.

/// Input: `f32 [batch, 3, S, S]`, CLIP-normalized pixels (see [`crate::preprocess`]).
pub const INPUT_PIXEL_VALUES: &str = "pixel_values";
/// Output: `f32 [batch, C]`, `exp(logit_scale) * cosine(image, class)`, as transformers'
/// `logits_per_image`.
pub const OUTPUT_LOGITS: &str = "logits";
/// Output: `f32 [batch, P]`, L2-normalized image embeddings.
pub const OUTPUT_IMAGE_EMBEDS: &str = "image_embeds";

/// Keys of the metadata properties of an exported model.
pub mod meta {
    /// JSON array of class labels, in logit order.
    pub const LABELS: &str = "ahp.labels";
    /// Square input side `S` in pixels.
    pub const IMAGE_SIZE: &str = "ahp.image_size";
    /// JSON array of the 3 normalization means.
    pub const MEAN: &str = "ahp.mean";
    /// JSON array of the 3 normalization standard deviations.
    pub const STD: &str = "ahp.std";
    /// Resize rule, e.g. `shortest_edge=224,bicubic,center_crop=224x224`.
    pub const RESIZE: &str = "ahp.resize";
    /// Prompt template used for the class embeddings; a prompt ensemble's templates are joined
    /// with newlines (templates never contain one).
    pub const TEMPLATE: &str = "ahp.template";
    /// Training method (`zero-shot`, `ahp`, ...).
    pub const METHOD: &str = "ahp.method";
    /// Base weights sha256 and run id.
    pub const SOURCE: &str = "ahp.source";
    /// JSON object of per-block gate values.
    pub const GATES: &str = "ahp.gates";
    /// JSON object `block -> [head indices]` of heads removed by `ahp-export --prune-heads`.
    pub const PRUNED_HEADS: &str = "ahp.pruned_heads";
}
