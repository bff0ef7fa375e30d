//! The markdown report of a run: zero-shot and trained accuracy per domain and split.

use ahp_spec::run::{Method, Selection};

use super::TrainOptions;
use crate::eval::DomainAccuracy;
use crate::state::StateMeta;
use crate::trainable::AdapterSpec;

/// The report's text.
pub(super) fn render_report(
    o: &TrainOptions,
    meta: &StateMeta,
    trained: &[DomainAccuracy],
    parameters: usize,
    layout: &AdapterSpec,
) -> String {
    let mut s = String::new();
    let kept = match (o.config.method, o.config.selection) {
        (Method::ZeroShot, _) => "no training".to_string(),
        (_, Selection::SourceVal) => format!(
            "kept step {} (selected by source-val {:.2}%)",
            meta.best_step,
            100.0 * meta.best_acc
        ),
        (_, Selection::Last) => format!(
            "kept step {} (the last step; source-val {:.2}%)",
            meta.best_step,
            100.0 * meta.best_acc
        ),
    };
    s.push_str(&format!(
        "# ahp-train report\n\nmethod `{}`, target {}, {kept}, {} trainable parameters{}\n\n",
        o.config.method.as_str(),
        o.target_domains.join(", "),
        parameters,
        layout
            .lora
            .as_ref()
            .map(|l| format!(", LoRA ranks {:?} alpha {}", l.ranks, l.alpha))
            .unwrap_or_default()
    ));
    s.push_str(&format!(
        "| domain | split | images | zero-shot | {} |\n|---|---|---:|---:|---:|\n",
        o.config.method.as_str()
    ));
    for row in trained {
        let zs = meta
            .zero_shot
            .iter()
            .find(|z| z.domain == row.domain && z.split == row.split)
            .map(|z| format!("{:.2}%", 100.0 * z.accuracy()))
            .unwrap_or_else(|| "-".into());
        s.push_str(&format!(
            "| {} | {} | {} | {} | {:.2}% |\n",
            row.domain,
            row.split,
            row.images,
            zs,
            100.0 * row.accuracy()
        ));
    }
    let skipped: u64 = trained.iter().map(|r| r.skipped).sum();
    if skipped > 0 {
        s.push_str(&format!(
            "\n{skipped} unreadable images were skipped during evaluation.\n"
        ));
    }
    s
}
