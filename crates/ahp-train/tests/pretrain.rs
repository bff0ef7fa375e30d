//! Pretraining from scratch: on the emoji image–caption tree of the committed offline sample
//! (the checkpoint loads like any Hugging Face one, the zero-shot report covers every designer,
//! seen and never seen), pausing and resuming to the same bytes, and the errors.

use std::path::{Path, PathBuf};

use ahp_data::emoji::{build, EmojiConfig, Role};
use ahp_model::LoadedClip;
use ahp_train::pretrain::{pretrain, CaptionOptions, PretrainOptions, Pretrained, STATE_FILE};
use candle_core::Device;

/// The unpacked packages of `ahp-data`'s offline sample (dog, pizza, rocket by every designer).
fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ahp-data/tests/fixtures/emoji")
}

/// Renders the sample's pretraining tree and benchmark tree under `dir` at 32 px.
fn trees(dir: &Path) -> (PathBuf, PathBuf) {
    let (pre, bench) = (dir.join("pretraining"), dir.join("benchmark"));
    for (role, out) in [(Role::Pretraining, &pre), (Role::Benchmark, &bench)] {
        let mut cfg = EmojiConfig::new(role, out, &dir.join("cache"));
        cfg.unpacked = Some(sample());
        cfg.render.size = 32;
        cfg.progress = false;
        if role == Role::Benchmark {
            cfg.classes = Some(vec!["dog".into(), "pizza".into(), "rocket".into()]);
        }
        build(&cfg).unwrap_or_else(|e| panic!("{e}"));
    }
    (pre, bench)
}

/// A tiny model: 32 px, one block per tower, width 32.
fn tiny(out: &Path, steps: u64) -> PretrainOptions {
    PretrainOptions {
        out: out.to_path_buf(),
        steps,
        batch_size: 6,
        warmup_steps: 2,
        image_size: 32,
        patch_size: 16,
        vision: (32, 1, 2),
        text: (32, 1, 2),
        projection_dim: 16,
        eval_per_class: 2,
        progress: false,
        log_every: 2,
        save_every: 2,
        ..PretrainOptions::default()
    }
}

fn done(r: ahp_train::Result<Pretrained>) -> ahp_train::pretrain::PretrainSummary {
    match r.unwrap_or_else(|e| panic!("{e}")) {
        Pretrained::Done(s) => *s,
        Pretrained::Paused { at, .. } => panic!("paused at {at}"),
    }
}

#[test]
fn emoji_pretraining_writes_a_checkpoint_and_reports_seen_and_unseen_designers() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (pre, bench) = trees(dir.path());
    let out = dir.path().join("clip");
    let mut captions = CaptionOptions::new(&pre);
    captions.benchmark = Some(bench);
    let s = done(pretrain(
        &PretrainOptions {
            captions: Some(captions),
            ..tiny(&out, 4)
        },
        &Device::Cpu,
    ));
    // 3 emoji by 6 designers, but Firefox OS draws no rocket
    assert_eq!(s.tree_size, Some((3, 17)));
    assert_eq!(s.template, "an emoji of a {}.");
    assert_eq!(s.log.len(), 2);
    assert!(s.final_loss.is_finite());
    let seen: Vec<&str> = s
        .zero_shot
        .iter()
        .filter(|d| d.seen)
        .map(|d| d.domain.as_str())
        .collect();
    let unseen: Vec<&str> = s
        .zero_shot
        .iter()
        .filter(|d| !d.seen)
        .map(|d| d.domain.as_str())
        .collect();
    assert_eq!(
        seen,
        [
            "fluent-emoji",
            "fluent-emoji-flat",
            "fxemoji",
            "noto",
            "noto-v1",
            "twemoji"
        ]
    );
    assert_eq!(
        unseen,
        [
            "openmoji",
            "openmoji-black",
            "emojione",
            "emojione-monotone",
            "streamline-emojis"
        ]
    );
    for d in &s.zero_shot {
        let expected = if d.domain == "fxemoji" { 2 } else { 3 };
        assert_eq!(
            d.images, expected,
            "{}: one image per class drawn",
            d.domain
        );
        assert!((0.0..=1.0).contains(&d.accuracy));
    }
    // the checkpoint loads through the regular path and spells the class prompts
    let clip = LoadedClip::load(&out.display().to_string(), &Device::Cpu)
        .unwrap_or_else(|e| panic!("{e}"));
    for w in ["dog", "pizza", "rocket", "emoji", "of"] {
        assert!(
            clip.tokenizer.token_to_id(w).is_some(),
            "{w} in the vocabulary"
        );
    }
    // a tag word of one emoji only gets no embedding row
    assert!(clip.tokenizer.token_to_id("pet").is_none());
    assert!(
        !out.join(STATE_FILE).exists(),
        "the state is removed once done"
    );
}

/// Two runs' logs: the same steps, losses, accuracies, gradient norms, temperatures and
/// learning rates, bit for bit; the embedding cosines (a parallel reduction whose summation
/// order varies) within 1e-9.
fn assert_same_log(
    a: &ahp_train::pretrain::PretrainSummary,
    b: &ahp_train::pretrain::PretrainSummary,
) {
    assert_eq!(a.log.len(), b.log.len());
    for (x, y) in a.log.iter().zip(&b.log) {
        let exact = |l: &ahp_train::pretrain::LogLine| {
            (
                l.step,
                l.loss,
                l.accuracy,
                l.class_accuracy,
                l.style_accuracy,
                l.grad_norm,
                l.temperature,
                l.lr,
            )
        };
        assert_eq!(exact(x), exact(y), "step {}", x.step);
        assert!(
            (x.image_cosine - y.image_cosine).abs() < 1e-9,
            "step {}",
            x.step
        );
        assert!(
            (x.text_cosine - y.text_cosine).abs() < 1e-9,
            "step {}",
            x.step
        );
    }
}

fn read(d: &Path) -> Vec<u8> {
    std::fs::read(d.join("model.safetensors")).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_paused_emoji_run_resumes_to_the_same_weights_and_log() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (pre, _) = trees(dir.path());
    let emoji = |out: &Path, pause_at| PretrainOptions {
        captions: Some(CaptionOptions::new(&pre)),
        pause_at,
        log_every: 2,
        save_every: 3,
        ..tiny(out, 6)
    };
    let (straight, split) = (dir.path().join("straight"), dir.path().join("split"));
    let a = done(pretrain(&emoji(&straight, None), &Device::Cpu));
    // paused mid-window: the window's sums must survive the pause
    let paused = pretrain(&emoji(&split, Some(3)), &Device::Cpu).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(paused, Pretrained::Paused { at: 3, .. }),
        "{paused:?}"
    );
    assert!(
        !split.join("tokenizer.json").exists(),
        "no checkpoint file before the end"
    );
    let b = done(pretrain(&emoji(&split, None), &Device::Cpu));
    assert_eq!(b.resumed_at, 3);
    assert_same_log(&a, &b);
    assert!(read(&straight) == read(&split), "resumed weights differ");
}

#[test]
fn a_paused_run_resumes_to_the_same_weights() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (straight, split) = (dir.path().join("straight"), dir.path().join("split"));
    let a = done(pretrain(&tiny(&straight, 6), &Device::Cpu));
    let paused = pretrain(
        &PretrainOptions {
            pause_at: Some(3),
            ..tiny(&split, 6)
        },
        &Device::Cpu,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(paused, Pretrained::Paused { at: 3, .. }),
        "{paused:?}"
    );
    assert!(split.join(STATE_FILE).is_file());
    assert!(!split.join("model.safetensors").exists());
    // other settings must not continue this state
    let other = pretrain(
        &PretrainOptions {
            lr: 5e-4,
            ..tiny(&split, 6)
        },
        &Device::Cpu,
    );
    let e = other.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        e.contains(STATE_FILE) && e.contains("other settings"),
        "{e}"
    );
    let s = done(pretrain(&tiny(&split, 6), &Device::Cpu));
    assert_eq!(s.resumed_at, 3);
    assert_same_log(&a, &s);
    assert!(read(&straight) == read(&split), "resumed weights differ");
}

#[test]
fn report_inputs_are_checked_before_training() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (pre, _) = trees(dir.path());
    let mut captions = CaptionOptions::new(&pre);
    captions.benchmark = Some(dir.path().join("no-such-benchmark"));
    let out = dir.path().join("clip");
    let r = pretrain(
        &PretrainOptions {
            captions: Some(captions),
            ..tiny(&out, 2)
        },
        &Device::Cpu,
    );
    let e = r.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        e.contains("no-such-benchmark") && e.contains("--benchmark"),
        "{e}"
    );
    assert!(!out.join(STATE_FILE).exists() && !out.join("model.safetensors").exists());
}

#[test]
fn a_tree_without_captions_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let r = pretrain(
        &PretrainOptions {
            captions: Some(CaptionOptions::new(dir.path())),
            ..tiny(&dir.path().join("clip"), 2)
        },
        &Device::Cpu,
    );
    let e = r.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("captions.jsonl"), "{e}");
}
