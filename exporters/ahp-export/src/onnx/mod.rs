//! Building the ONNX graph of a plain (folded) CLIP vision tower with its projection, L2
//! normalization and the folded classifier, with `onnx-protobuf` types.
//!
//! Input `pixel_values` `f32 [batch, 3, S, S]` (symbolic `batch`); outputs `logits`
//! `f32 [batch, C]` and `image_embeds` `f32 [batch, P]` (L2-normalized), names from
//! [`ahp_spec::onnx_names`]. Standard ONNX operators only (default domain):
//!
//! * embeddings: `Conv` (stride = kernel = patch) → `Reshape` → `Transpose`, then `Pad` one zero
//!   token in front and `Add` the position embeddings whose row 0 already holds the class
//!   embedding (so the class token needs no batch-dependent `Expand`);
//! * LayerNorm: `LayerNormalization` from opset 17, else `ReduceMean`/`Sub`/`Mul`/`Add`/`Sqrt`/
//!   `Div`;
//! * attention, as the model computes it: `MatMul`+`Add` for Q, K and V, `Reshape` to
//!   `[B, N, H, d_head]`, `Transpose` to heads-first, `MatMul`, `Mul` by `d_head^-0.5`,
//!   `Softmax(axis=-1)`, `MatMul`, `Transpose` back, `Reshape`, `out_proj`;
//! * MLP activations: `Sigmoid`/`Mul` (quick_gelu), `Erf` (gelu), `Tanh` (gelu_pytorch_tanh),
//!   `Relu`;
//! * pooling: `Gather` of token 0; `ReduceL2` + `Div` for the normalization; `MatMul` with the
//!   `[P, C]` classifier.
//!
//! Weights are f32 initializers (f16 with [`OnnxOptions::fp16`], with `Cast` at the input and
//! the outputs so the interface stays f32). Gates and low-rank deltas never appear: they are
//! folded ([`crate::fold`]), so a purified export has the same nodes as a zero-shot one.
//!
//! The pieces: [`VisionGraph`] (what goes in, `graph`), the node and initializer builder
//! (`builder`, `layers`, `weights`), the vision tower (`vision`), the classifier head
//! (`head`), and the `ModelProto` with its reading and writing (`model`, `summary`).

mod builder;
mod f16;
mod graph;
mod head;
mod layers;
mod model;
mod options;
mod summary;
mod vision;
mod weights;

use ahp_spec::onnx_names::{INPUT_PIXEL_VALUES, OUTPUT_IMAGE_EMBEDS, OUTPUT_LOGITS};
use onnx_protobuf::ModelProto;

pub use f16::f32_to_f16_bits;
pub use graph::VisionGraph;
pub use model::{encode, read_model, write_model, BATCH_DIM, PROTOBUF_LIMIT};
pub use options::{ir_version_for, OnnxOptions, DEFAULT_OPSET, MAX_OPSET, MIN_OPSET};
pub use summary::{metadata_value, summarize, GraphSummary};

use crate::error::Result;
use builder::Builder;
use model::Interface;
use vision::Tower;

/// Builds the ONNX model; `metadata` becomes `metadata_props` (in order).
pub fn build_model(
    graph: &VisionGraph,
    metadata: &[(String, String)],
    options: &OnnxOptions,
) -> Result<ModelProto> {
    options.check()?;
    let classes = graph.classes()?;
    let kept = graph.checked_kept_heads()?;
    let mut b = Builder::new(options);
    // Reserve the interface names.
    for name in [INPUT_PIXEL_VALUES, OUTPUT_LOGITS, OUTPUT_IMAGE_EMBEDS] {
        b.unique(name);
    }
    let tower = Tower::new(graph.config, graph.weights, &kept);
    let embeds = tower.image_embeds(&mut b, options.fp16)?;
    head::outputs(&mut b, &embeds, graph.classifier, options.fp16)?;
    model::assemble(b, &Interface::new(graph.config, classes), metadata, options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion_matches_known_values() {
        assert_eq!(f32_to_f16_bits(0.0), 0);
        assert_eq!(f32_to_f16_bits(1.0), 0x3c00);
        assert_eq!(f32_to_f16_bits(-2.0), 0xc000);
        assert_eq!(f32_to_f16_bits(65504.0), 0x7bff);
        assert_eq!(f32_to_f16_bits(1e6), 0x7c00);
        assert_eq!(f32_to_f16_bits(0.1), 0x2e66);
        assert_eq!(f32_to_f16_bits(6.0e-8), 0x0001);
        assert_eq!(f32_to_f16_bits(1.0 + 1.0 / 2048.0), 0x3c00); // tie to even
    }

    #[test]
    fn ir_versions() {
        assert_eq!(ir_version_for(13), 7);
        assert_eq!(ir_version_for(17), 8);
        assert_eq!(ir_version_for(21), 10);
        assert!(OnnxOptions {
            opset: 12,
            fp16: false
        }
        .check()
        .is_err());
    }
}
