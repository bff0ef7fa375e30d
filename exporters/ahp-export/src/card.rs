//! The model card written next to a deployed export (`MODEL_CARD.md`): what the model is, what
//! it was made from (base checkpoint and its hashes, method, run), how to feed it, what it
//! outputs, and the parity figures the export was validated with.

use std::fmt::Write as _;

use ahp_spec::onnx_names::{INPUT_PIXEL_VALUES, OUTPUT_IMAGE_EMBEDS, OUTPUT_LOGITS};

use crate::export::{ExportOptions, Prepared, PruneReport};
use crate::validate::Validation;

/// What the card says about one export.
#[derive(Debug, Clone, Copy)]
pub struct CardInput<'a> {
    /// The exported model.
    pub prepared: &'a Prepared,
    /// How it was exported.
    pub options: &'a ExportOptions,
    /// The tract-vs-candle validation (`None` with `--no-verify`).
    pub validation: Option<&'a Validation>,
    /// Head pruning, if any.
    pub pruning: Option<&'a PruneReport>,
}

/// The card's Markdown text.
pub fn model_card(c: CardInput<'_>) -> String {
    let p = c.prepared;
    let mut md = format!(
        "# {} CLIP image classifier ({} classes)\n\n",
        p.method.as_str(),
        p.labels.len()
    );
    provenance(&mut md, c);
    interface(&mut md, p);
    parity(&mut md, c);
    md.push_str(
        "\n## Licence\n\nThe weights are derived from the base checkpoint above: its licence \
         and its model card apply to this model.\n",
    );
    md
}

fn provenance(md: &mut String, c: CardInput<'_>) {
    let p = c.prepared;
    let _ = writeln!(md, "## What it is\n");
    let _ = writeln!(
        md,
        "- method: `{}`{}",
        p.method.as_str(),
        p.run_id.as_ref().map_or(String::new(), |r| format!(
            ", run `{r}` (its `run.json` records the training data, target domain and accuracies)"
        ))
    );
    let _ = writeln!(md, "- base checkpoint: `{}`", p.base_location);
    for w in &p.base_weights {
        let _ = writeln!(md, "  - `{}` sha256 `{}`", w.name, w.sha256);
    }
    let graph = if p.hooks.is_empty() {
        "the base checkpoint's vision tower unchanged (zero-shot)"
    } else {
        "adapters folded into plain Q/V/out_proj weights: a plain CLIP vision tower"
    };
    let _ = writeln!(
        md,
        "- {graph}, {} blocks, opset {}{}",
        p.config.vision_config.num_hidden_layers,
        c.options.onnx.opset,
        if c.options.onnx.fp16 {
            ", fp16 weights and compute"
        } else {
            ""
        }
    );
    if let Some(r) = c.pruning {
        let _ = writeln!(
            md,
            "- pruned: {} heads with gate <= {} removed",
            r.plan.removed_count(),
            r.plan.threshold
        );
    }
    let _ = writeln!(md, "- prompts: {}", quoted(&p.templates));
    let _ = writeln!(md, "- labels (logit order): {}", quoted(&p.labels));
}

fn interface(md: &mut String, p: &Prepared) {
    let v = &p.config.vision_config;
    let pp = &p.preprocess;
    let _ = writeln!(md, "\n## How to feed it\n");
    let _ = writeln!(
        md,
        "- input `{INPUT_PIXEL_VALUES}`: float32 `[batch, {}, {}, {}]`, RGB",
        v.num_channels, v.image_size, v.image_size
    );
    let _ = writeln!(
        md,
        "- preprocessing (CLIP's): resize the shortest edge to {} (bicubic), centre-crop \
         {}x{}, scale by {:.8}, normalise with mean {:?} and std {:?}",
        pp.shortest_edge, pp.crop_width, pp.crop_height, pp.rescale_factor, pp.mean, pp.std
    );
    let _ = writeln!(
        md,
        "- output `{OUTPUT_LOGITS}`: float32 `[batch, {}]`, scaled cosine similarities to the \
         labels' prompt embeddings",
        p.labels.len()
    );
    let _ = writeln!(
        md,
        "- output `{OUTPUT_IMAGE_EMBEDS}`: float32 `[batch, {}]`, L2-normalised image embeddings",
        p.config.projection_dim
    );
}

fn parity(md: &mut String, c: CardInput<'_>) {
    let _ = writeln!(md, "\n## Validation\n");
    match c.validation {
        Some(v) => {
            let reference = match c.pruning {
                Some(_) => "the candle model with the removed heads masked",
                None if c.prepared.hooks.is_empty() => "the candle model",
                None => "the candle model with its adapters (not folded)",
            };
            let _ = writeln!(
                md,
                "The written ONNX file was run with tract on a batch of {} seeded images and \
                 compared with {reference}:\n",
                v.batch
            );
            for o in &v.outputs {
                let _ = writeln!(
                    md,
                    "- `{}`: max |onnx - candle| = {:.3e} (tolerance {:.1e})",
                    o.name, o.max_abs_diff, o.tolerance
                );
            }
        }
        None => {
            let _ = writeln!(md, "Not validated (exported with `--no-verify`).");
        }
    }
    for (name, d) in c.pruning.map_or(&[][..], |r| &r.diff_vs_unpruned[..]) {
        let _ = writeln!(md, "- `{name}`: max |pruned - unpruned| = {d:.3e}");
    }
}

/// Each item as inline code, with a fence longer than any backtick run inside it.
fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|s| {
            let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
            let fence = "`".repeat(longest + 1);
            let pad = if s.starts_with('`') || s.ends_with('`') {
                " "
            } else {
                ""
            };
            format!("{fence}{pad}{s}{pad}{fence}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::quoted;

    #[test]
    fn labels_with_backticks_stay_one_code_span() {
        let q = quoted(&["plain".into(), "a`b".into(), "`x".into()]);
        assert_eq!(q, "`plain`, ``a`b``, `` `x ``");
    }
}
