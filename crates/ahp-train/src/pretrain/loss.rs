//! The pretraining loss (CLIP's symmetric InfoNCE against a fixed caption set) and the weight
//! decay groups.

use candle_core::{Tensor, D};

use crate::error::{Result, TrainError};

/// Symmetric InfoNCE of a batch against a fixed caption set.
///
/// `logits` is `[B, K]` (`exp(logit_scale) · cos(image, caption)`), `caption_of[i]` the
/// caption of image `i`. Image → caption is a cross-entropy over the `K` captions; caption →
/// image is, for every caption present in the batch, a cross-entropy over the `B` images with
/// the target spread uniformly over that caption's images. Returns the mean of the two.
pub fn contrastive_loss(logits: &Tensor, caption_of: &[u32]) -> Result<Tensor> {
    let (b, k) = logits.dims2()?;
    if caption_of.len() != b || caption_of.iter().any(|&c| c as usize >= k) {
        return Err(TrainError::option(
            "batch-size",
            format!(
                "{} caption ids for a [{b}, {k}] logit matrix",
                caption_of.len()
            ),
        ));
    }
    let device = logits.device();
    let targets = Tensor::from_vec(caption_of.to_vec(), b, device)?;
    let image_to_text = candle_nn::loss::cross_entropy(logits, &targets)?;
    let mut count = vec![0usize; k];
    for &c in caption_of {
        count[c as usize] += 1;
    }
    let rows: Vec<u32> = (0..k as u32).filter(|&c| count[c as usize] > 0).collect();
    let mut soft = Vec::with_capacity(rows.len() * b);
    for &c in &rows {
        let w = 1.0 / count[c as usize] as f32;
        soft.extend(caption_of.iter().map(|&ci| if ci == c { w } else { 0.0 }));
    }
    let soft = Tensor::from_vec(soft, (rows.len(), b), device)?.to_dtype(logits.dtype())?;
    let rows = Tensor::from_vec(rows, soft.dim(0)?, device)?;
    let per_caption = logits.t()?.contiguous()?.index_select(&rows, 0)?; // [K', B]
    let log_p = candle_nn::ops::log_softmax(&per_caption, D::Minus1)?;
    let text_to_image = (log_p.mul(&soft)?.sum(D::Minus1)?.mean_all()? * -1.0)?;
    Ok(((image_to_text + text_to_image)? * 0.5)?)
}

/// Whether AdamW's decoupled weight decay applies to a parameter: weight matrices and the
/// patch embedding do; biases, LayerNorm gains, the class token, token and position
/// embeddings and `logit_scale` do not (decaying them only pulls gains towards 0 and the
/// temperature towards 1).
pub fn decays(name: &str, rank: usize) -> bool {
    rank >= 2 && !name.contains("position_embedding") && !name.contains("token_embedding")
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn loss_of(logits: &[[f32; 3]], caption_of: &[u32]) -> Result<f64> {
        let flat: Vec<f32> = logits.iter().flatten().copied().collect();
        let t = Tensor::from_vec(flat, (logits.len(), 3), &Device::Cpu)?;
        Ok(f64::from(
            contrastive_loss(&t, caption_of)?.to_scalar::<f32>()?,
        ))
    }

    #[test]
    fn contrastive_loss_matches_a_hand_computation() -> Result<()> {
        // Two images of caption 0, one of caption 2; caption 1 is absent.
        let logits = [[2.0f32, 0.0, -1.0], [1.0, 0.5, 0.0], [0.0, 0.0, 3.0]];
        let caption_of = [0u32, 0, 2];
        let lse = |v: &[f64]| v.iter().map(|x| x.exp()).sum::<f64>().ln();
        let i2t = [
            lse(&[2.0, 0.0, -1.0]) - 2.0,
            lse(&[1.0, 0.5, 0.0]) - 1.0,
            lse(&[0.0, 0.0, 3.0]) - 3.0,
        ];
        let i2t = i2t.iter().sum::<f64>() / 3.0;
        // Caption 0 over images [2, 1, 0], target 1/2 on images 0 and 1.
        let c0 = lse(&[2.0, 1.0, 0.0]) - 0.5 * (2.0 + 1.0);
        // Caption 2 over images [-1, 0, 3], target on image 2.
        let c2 = lse(&[-1.0, 0.0, 3.0]) - 3.0;
        let expected = 0.5 * (i2t + 0.5 * (c0 + c2));
        let got = loss_of(&logits, &caption_of)?;
        assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
        Ok(())
    }

    #[test]
    fn contrastive_loss_rejects_bad_ids() {
        assert!(loss_of(&[[0.0; 3]; 2], &[0, 3]).is_err());
        assert!(loss_of(&[[0.0; 3]; 2], &[0]).is_err());
    }

    #[test]
    fn weight_decay_groups() {
        assert!(decays("vision_model.encoder.layers.0.mlp.fc1.weight", 2));
        assert!(decays("visual_projection.weight", 2));
        assert!(decays("vision_model.embeddings.patch_embedding.weight", 4));
        assert!(!decays("vision_model.encoder.layers.0.mlp.fc1.bias", 1));
        assert!(!decays("vision_model.post_layernorm.weight", 1));
        assert!(!decays("vision_model.embeddings.class_embedding", 1));
        assert!(!decays(
            "vision_model.embeddings.position_embedding.weight",
            2
        ));
        assert!(!decays("text_model.embeddings.token_embedding.weight", 2));
        assert!(!decays("logit_scale", 0));
    }
}
