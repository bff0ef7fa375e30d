//! The classifier head: L2 normalization of the image embeddings, the folded `[P, C]`
//! classifier, and the casts that keep an fp16 graph's outputs f32.

use ahp_spec::onnx_names::{OUTPUT_IMAGE_EMBEDS, OUTPUT_LOGITS};
use candle_core::{DType, Tensor};
use onnx_protobuf::tensor_proto::DataType;

use super::builder::{attr_int, Builder};
use crate::error::Result;

/// Writes the graph outputs `image_embeds` (normalized `embeds`) and `logits`
/// (`image_embeds @ classifier^T`).
pub(super) fn outputs(
    b: &mut Builder,
    embeds: &str,
    classifier: &Tensor,
    fp16: bool,
) -> Result<()> {
    let embeds = normalized(b, embeds, fp16);
    let cls_t = classifier.to_dtype(DType::F32)?.t()?.contiguous()?;
    let cls_w = b.tensor("classifier_t", &cls_t)?;
    if fp16 {
        let logits = b.node("MatMul", "logits_f16", &[&embeds, &cls_w], vec![]);
        let to = vec![attr_int("to", DataType::FLOAT as i64)];
        b.node_to("Cast", &[&logits], to.clone(), OUTPUT_LOGITS);
        b.node_to("Cast", &[&embeds], to, OUTPUT_IMAGE_EMBEDS);
    } else {
        b.node_to("MatMul", &[&embeds, &cls_w], vec![], OUTPUT_LOGITS);
    }
    Ok(())
}

/// `embeds / ||embeds||`: the `image_embeds` output itself, or its f16 value in fp16 mode.
fn normalized(b: &mut Builder, embeds: &str, fp16: bool) -> String {
    let norm = b.reduce_last("ReduceL2", "image_embeds/norm", embeds);
    if fp16 {
        b.node("Div", "image_embeds_f16", &[embeds, &norm], vec![])
    } else {
        b.node_to("Div", &[embeds, &norm], vec![], OUTPUT_IMAGE_EMBEDS);
        OUTPUT_IMAGE_EMBEDS.to_string()
    }
}
