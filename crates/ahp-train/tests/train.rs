//! Training on the fixture CLIP and synthetic multi-domain data: the loss decreases, the
//! adapters move (gates still sum to H), the run directory is complete and loadable, and the
//! MMD gradient reaches the gates only.

mod common;

use std::collections::HashMap;

use ahp_data::{BalancedBatcher, DomainBedDataset, LoaderConfig, ScanOptions, SplitOptions};
use ahp_model::{gates_from_logits, LoadedClip, ZeroShotClassifier, DEFAULT_TEMPLATE};
use ahp_spec::run::{gate_key, Method, RunManifest};
use ahp_train::train::step_gradients;
use ahp_train::trainable::{default_ranks, AdapterSpec, Trainable};
use candle_core::{Device, Tensor, Var};

#[test]
fn training_learns_and_writes_a_complete_run_dir() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = common::synth_data(tmp.path());
    let out = tmp.path().join("run");
    let summary = ahp_train::train(&common::options(data, out.clone())).expect("train");

    // The loss decreases.
    let h = &summary.loss_history;
    assert_eq!(h.len(), 100);
    let first: f64 = h[..15].iter().sum::<f64>() / 15.0;
    let last: f64 = h[h.len() - 15..].iter().sum::<f64>() / 15.0;
    assert!(
        last < first - 0.05,
        "loss did not decrease: first {first:.4}, last {last:.4}"
    );
    assert!(
        summary.best_step > 0,
        "training never beat zero-shot on source validation"
    );

    // Run directory.
    for f in [
        "adapter.safetensors",
        "run.json",
        "metrics.jsonl",
        "report.md",
        "state.safetensors",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let manifest: RunManifest =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).expect("run.json"))
            .expect("manifest");
    assert_eq!(manifest.method, Method::Ahp);
    assert_eq!(
        manifest.classes,
        vec!["circle", "cross", "ring", "square", "star", "triangle"]
    );
    assert_eq!(
        manifest.lora.as_ref().expect("lora").ranks,
        default_ranks(3)
    );
    assert_eq!(manifest.target_domains, vec!["sketch"]);
    assert_eq!(manifest.best_step, summary.best_step);
    let weights =
        std::fs::read(std::path::Path::new(&common::fixture_clip()).join("model.safetensors"))
            .expect("weights");
    use sha2::Digest;
    assert_eq!(
        manifest.base.weights[0].sha256,
        format!("{:x}", sha2::Sha256::digest(&weights))
    );
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).expect("metrics");
    assert_eq!(
        metrics.lines().count(),
        5,
        "one line per evaluation (every 20 of 100 steps)"
    );
    let report = std::fs::read_to_string(out.join("report.md")).expect("report");
    assert!(report.contains("| sketch | target |"), "{report}");

    // The adapter loads, gates moved but still sum to H, LoRA B is non-zero, and the adapted
    // model differs from the base.
    let clip = LoadedClip::load(&common::fixture_clip(), &Device::Cpu).expect("clip");
    let (_, adapter) =
        ahp_model::load_run(&out, clip.model.config(), &Device::Cpu).expect("load run");
    let heads = clip.model.config().vision_config.num_attention_heads;
    let mut moved = 0f32;
    for (i, hook) in adapter.hooks.iter().enumerate() {
        let g = gates_from_logits(hook.gate_logits.as_ref().expect("gates")).expect("gates");
        let v = g.to_vec1::<f32>().expect("vec");
        let sum: f32 = v.iter().sum();
        assert!(
            (sum - heads as f32).abs() < 1e-4,
            "block {i}: gates sum to {sum}"
        );
        moved = moved.max(v.iter().map(|x| (x - 1.0).abs()).fold(0.0, f32::max));
        assert!(
            common::max_abs(hook.q.as_ref().expect("q").b()) > 0.0,
            "block {i}: q.lora_b is zero"
        );
        assert!(
            common::max_abs(hook.v.as_ref().expect("v").b()) > 0.0,
            "block {i}: v.lora_b is zero"
        );
    }
    assert!(moved > 1e-3, "gates did not move");
    let _ = gate_key(0);
    let pixels = Tensor::randn(0f32, 1.0, (2, 3, 32, 32), &Device::Cpu).expect("pixels");
    let base = clip
        .model
        .image_features(&pixels, &[], false)
        .expect("base")
        .embeds;
    let adapted = clip
        .model
        .image_features(&pixels, &adapter.hooks, false)
        .expect("adapted")
        .embeds;
    assert!(common::max_abs(&(base - adapted).expect("sub")) > 1e-4);
}

#[test]
fn mmd_gradient_reaches_gates_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = common::synth_data(tmp.path());
    let clip = LoadedClip::load(&common::fixture_clip(), &Device::Cpu).expect("clip");
    let ds = DomainBedDataset::scan(&data, &ScanOptions::default()).expect("scan");
    let split = ds
        .split(&SplitOptions {
            target_domains: vec!["sketch".into()],
            ..Default::default()
        })
        .expect("split");
    let classifier = ZeroShotClassifier::new(
        &clip.model,
        &clip.tokenizer,
        &split.classes,
        DEFAULT_TEMPLATE,
    )
    .expect("zs");
    let batcher = BalancedBatcher::new(&split, LoaderConfig::new(12, 0, clip.preprocess.clone()))
        .expect("batcher");
    let batch = batcher.batch_at(0).expect("batch");
    let vision = clip.model.config().vision_config.clone();
    let trainable = Trainable::init(
        AdapterSpec::new(Method::Ahp, &default_ranks(3), 8.0, &vision).expect("layout"),
        &vision,
        0,
        &Device::Cpu,
    )
    .expect("init");
    // Non-zero B and gates so that every path carries gradient.
    let mut values: HashMap<String, Tensor> = HashMap::new();
    for (name, var) in trainable
        .lora_vars()
        .into_iter()
        .chain(trainable.gate_vars())
    {
        values.insert(
            name,
            Tensor::randn(0f32, 0.2, var.dims(), &Device::Cpu).expect("randn"),
        );
    }
    trainable.restore(&values).expect("restore");
    let [b, c, h, w] = batch.shape();
    let pixels =
        Tensor::from_vec(batch.images.clone(), (b, c, h, w), &Device::Cpu).expect("pixels");
    let labels = Tensor::from_vec(batch.labels.clone(), b, &Device::Cpu).expect("labels");
    let run = |mmd_weight: f64| {
        step_gradients(
            &clip.model,
            &classifier,
            &trainable,
            &pixels,
            &labels,
            &batch.domains,
            mmd_weight,
        )
        .expect("step")
    };
    let without = run(0.0);
    let with = run(1.0);
    assert!(
        with.mmd > 0.0,
        "MMD between source domains should be positive"
    );
    let lora: Vec<(String, Var)> = trainable.lora_vars();
    for (name, _) in &lora {
        let d = common::max_abs(&(&with.lora[name] - &without.lora[name]).expect("sub"));
        assert_eq!(d, 0.0, "{name}: the MMD term changed a LoRA gradient");
    }
    let mut gate_change = 0f32;
    for (name, _) in trainable.gate_vars() {
        gate_change = gate_change.max(common::max_abs(
            &(&with.gates[&name] - &without.gates[&name]).expect("sub"),
        ));
    }
    assert!(gate_change > 0.0, "the MMD term must reach the gates");
}
