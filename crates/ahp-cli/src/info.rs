//! `ahp info`: a summary of a CLIP checkpoint (towers, tokenizer, preprocessing).

use std::process::ExitCode;

use ahp_model::LoadedClip;
use anyhow::Result;
use candle_core::Device;

/// Options of `ahp info`.
#[derive(clap::Args)]
pub struct InfoArgs {
    /// Checkpoint directory or Hugging Face repo id present in the local cache.
    #[arg(long)]
    clip: String,
}

/// Prints the summary of `--clip`.
pub fn run(args: InfoArgs) -> Result<ExitCode> {
    info(&args.clip)?;
    Ok(ExitCode::SUCCESS)
}

fn info(spec: &str) -> Result<()> {
    let clip = LoadedClip::load(spec, &Device::Cpu)?;
    let c = &clip.checkpoint.config;
    let v = &c.vision_config;
    let t = &c.text_config;
    println!("checkpoint   {}", clip.checkpoint.dir.display());
    println!("weights      {}", clip.checkpoint.weights_display());
    println!(
        "vision       {} px, patch {}, {} blocks x {} heads (d_head {}), width {}, {:?}",
        v.image_size,
        v.patch_size,
        v.num_hidden_layers,
        v.num_attention_heads,
        v.head_dim(),
        v.hidden_size,
        v.hidden_act
    );
    println!(
        "text         context {}, vocab {}, {} blocks x {} heads, width {}, {:?}, eos {}{}",
        t.max_position_embeddings,
        t.vocab_size,
        t.num_hidden_layers,
        t.num_attention_heads,
        t.hidden_size,
        t.hidden_act,
        t.eos_token_id,
        if t.legacy_eos_pooling() {
            " (legacy argmax pooling)"
        } else {
            ""
        }
    );
    println!("projection   {}", c.projection_dim);
    println!(
        "logit_scale  {:.4} (exp {:.2})",
        clip.model.logit_scale()?,
        clip.model.logit_scale()?.exp()
    );
    println!("preprocess   {}", clip.preprocess.resize_rule());
    Ok(())
}
