//! Bad checkpoints give clear errors naming the file, tensor or key, never a panic; the
//! supported layouts (sharded index, HF cache snapshot) load to the same model.

use std::path::{Path, PathBuf};

use ahp_model::{Checkpoint, ClipModel, LoadedClip};
use candle_core::{Device, Tensor};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models/clip-tiny-a")
}

/// A copy of the fixture checkpoint in a temp dir (only the files a checkpoint needs).
fn copy_fixture() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    for name in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "preprocessor_config.json",
    ] {
        std::fs::copy(fixture_dir().join(name), tmp.path().join(name)).expect(name);
    }
    tmp
}

fn load_err(dir: &Path) -> String {
    LoadedClip::load(dir.to_str().expect("utf-8"), &Device::Cpu)
        .expect_err("loading must fail")
        .to_string()
}

fn tensors(dir: &Path) -> Vec<(String, Tensor)> {
    let mut t: Vec<_> = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)
        .expect("load")
        .into_iter()
        .collect();
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

#[test]
fn missing_config_key_without_default() {
    let tmp = copy_fixture();
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("config.json")).expect("read"),
    )
    .expect("json");
    let mut obj = cfg.as_object().expect("object").clone();
    obj.remove("vision_config");
    std::fs::write(
        tmp.path().join("config.json"),
        serde_json::to_string(&obj).expect("json"),
    )
    .expect("write");
    let err = load_err(tmp.path());
    assert!(err.contains("config.json"), "{err}");
    assert!(err.contains("missing field `vision_config`"), "{err}");
}

#[test]
fn missing_config_file() {
    let tmp = copy_fixture();
    std::fs::remove_file(tmp.path().join("config.json")).expect("rm");
    let err = load_err(tmp.path());
    assert!(
        err.contains("config.json") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn wrong_tensor_shape_names_tensor_and_both_shapes() {
    let tmp = copy_fixture();
    let name = "vision_model.encoder.layers.1.self_attn.q_proj.weight";
    let mut t = tensors(tmp.path());
    for (k, v) in t.iter_mut() {
        if k == name {
            *v = v.narrow(0, 0, 16).expect("narrow"); // [32, 32] -> [16, 32]
        }
    }
    candle_core::safetensors::save(
        &t.into_iter().collect::<std::collections::HashMap<_, _>>(),
        tmp.path().join("model.safetensors"),
    )
    .expect("save");
    let err = load_err(tmp.path());
    assert!(err.contains(name), "{err}");
    assert!(
        err.contains("[32, 32]") && err.contains("[16, 32]"),
        "{err}"
    );
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn missing_tensor_is_an_error_not_a_random_init() {
    let tmp = copy_fixture();
    let name = "text_model.final_layer_norm.bias";
    let t: std::collections::HashMap<_, _> = tensors(tmp.path())
        .into_iter()
        .filter(|(k, _)| k != name)
        .collect();
    candle_core::safetensors::save(&t, tmp.path().join("model.safetensors")).expect("save");
    let err = load_err(tmp.path());
    assert!(err.contains(name), "{err}");
}

#[test]
fn truncated_safetensors() {
    let tmp = copy_fixture();
    let path = tmp.path().join("model.safetensors");
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("write");
    let err = load_err(tmp.path());
    assert!(err.contains("model.safetensors"), "{err}");
    assert!(err.contains("not a valid safetensors file"), "{err}");
    std::fs::write(&path, b"").expect("write");
    let err = load_err(tmp.path());
    assert!(err.contains("not a valid safetensors file"), "{err}");
}

#[test]
fn missing_weights_and_pytorch_only() {
    let tmp = copy_fixture();
    std::fs::remove_file(tmp.path().join("model.safetensors")).expect("rm");
    let err = load_err(tmp.path());
    assert!(err.contains("no model.safetensors"), "{err}");
    std::fs::write(tmp.path().join("pytorch_model.bin"), b"x").expect("write");
    let err = load_err(tmp.path());
    assert!(err.contains("pytorch_model.bin"), "{err}");
}

#[test]
fn tokenizer_json_missing() {
    let tmp = copy_fixture();
    std::fs::remove_file(tmp.path().join("tokenizer.json")).expect("rm");
    let err = load_err(tmp.path());
    assert!(
        err.contains("tokenizer.json") && err.contains("missing"),
        "{err}"
    );
    std::fs::write(tmp.path().join("tokenizer.json"), b"{not json").expect("write");
    let err = load_err(tmp.path());
    assert!(
        err.contains("tokenizer.json") && err.contains("cannot load"),
        "{err}"
    );
}

#[test]
fn not_a_checkpoint() {
    let err = load_err(Path::new("/definitely/not/here"));
    assert!(err.contains("/definitely/not/here"), "{err}");
    let tmp = copy_fixture();
    let file = tmp.path().join("config.json");
    let err = load_err(&file);
    assert!(err.contains("got a file"), "{err}");
}

fn embeds(clip: &ClipModel) -> Tensor {
    clip.image_features(&fixed_pixels(), &[], false)
        .expect("features")
        .embeds
}

fn fixed_pixels() -> Tensor {
    Tensor::arange(0f32, (2 * 3 * 32 * 32) as f32, &Device::Cpu)
        .expect("arange")
        .affine(1.0 / 3000.0, -1.0)
        .expect("affine")
        .reshape((2, 3, 32, 32))
        .expect("reshape")
}

#[test]
fn sharded_index_loads_the_same_model() {
    let tmp = copy_fixture();
    let all = tensors(tmp.path());
    std::fs::remove_file(tmp.path().join("model.safetensors")).expect("rm");
    let (first, second) = all.split_at(all.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", first),
        ("model-00002-of-00002.safetensors", second),
    ] {
        let map: std::collections::HashMap<_, _> = part.iter().cloned().collect();
        candle_core::safetensors::save(&map, tmp.path().join(file)).expect("save shard");
        for (k, _) in part {
            weight_map.insert(k.clone(), serde_json::Value::String(file.into()));
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(
        tmp.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .expect("index");
    let sharded =
        LoadedClip::load(tmp.path().to_str().expect("utf-8"), &Device::Cpu).expect("sharded");
    assert_eq!(sharded.checkpoint.weight_files.len(), 2);
    let single =
        LoadedClip::load(fixture_dir().to_str().expect("utf-8"), &Device::Cpu).expect("single");
    let d = (embeds(&sharded.model) - embeds(&single.model))
        .expect("sub")
        .abs()
        .expect("abs")
        .max_all()
        .expect("max")
        .to_scalar::<f32>()
        .expect("scalar");
    assert_eq!(d, 0.0);

    std::fs::remove_file(tmp.path().join("model-00002-of-00002.safetensors")).expect("rm");
    let err = load_err(tmp.path());
    assert!(
        err.contains("model-00002-of-00002.safetensors") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn hf_cache_layout_resolves_repo_ids() {
    let cache = tempfile::tempdir().expect("tempdir");
    let repo = cache.path().join("models--tiny--clip-a");
    let rev = "0123456789abcdef0123456789abcdef01234567";
    let snap = repo.join("snapshots").join(rev);
    std::fs::create_dir_all(&snap).expect("mkdir");
    std::fs::create_dir_all(repo.join("refs")).expect("mkdir");
    std::fs::write(repo.join("refs/main"), rev).expect("ref");
    let src = copy_fixture();
    for entry in std::fs::read_dir(src.path()).expect("read_dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), snap.join(entry.file_name())).expect("copy");
    }
    let ck = Checkpoint::from_hf_cache_in(cache.path(), "tiny/clip-a").expect("resolve");
    assert_eq!(ck.dir, snap);
    let ck = Checkpoint::from_hf_cache_in(cache.path(), &format!("tiny/clip-a@{rev}"))
        .expect("revision");
    assert_eq!(ck.dir, snap);
    let err = Checkpoint::from_hf_cache_in(cache.path(), "openai/clip-vit-base-patch16")
        .expect_err("absent")
        .to_string();
    assert!(
        err.contains("models--openai--clip-vit-base-patch16"),
        "{err}"
    );
    assert!(err.contains("never downloads"), "{err}");
}
