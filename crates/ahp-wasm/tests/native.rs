//! The browser crate's core, run natively with tract on the committed fixtures: metadata, model
//! info, classification of RGBA pixels against transformers' reference outputs, and the errors
//! the page shows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use ahp_wasm::{softmax, Error, Model};

/// The six classes of the fixture models, in logit order.
const CLASSES: [&str; 6] = ["dog", "cat", "car", "tree", "house", "star"];

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel)
}

fn load(rel: &str) -> Model {
    let path = fixture(rel);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Model::load(&bytes, rel).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A tensor of a fixture model's `reference.safetensors` (transformers' outputs).
fn reference(model: &str, name: &str) -> (Vec<usize>, Vec<f32>) {
    let path = fixture(&format!("models/{model}/reference.safetensors"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let values = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (t.shape().to_vec(), values)
}

/// The parity images, sorted by name (the order of the reference tensors).
fn images() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixture("images"))
        .expect("tests/fixtures/images")
        .map(|e| e.expect("dir entry").path())
        .collect();
    v.sort();
    assert_eq!(v.len(), 7);
    v
}

/// Decodes an image file into the RGBA8 buffer a browser canvas would give.
fn rgba(path: &Path) -> (Vec<u8>, u32, u32) {
    let image = ahp_spec::preprocess::load_image(path)
        .expect("decode")
        .to_rgba8();
    let (w, h) = image.dimensions();
    (image.into_raw(), w, h)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn metadata_and_info() {
    let m = load("onnx/clip-tiny-a.onnx");
    assert_eq!(m.info().labels, CLASSES);
    assert_eq!(m.info().image_size(), (32, 32));
    let s = m.summary();
    assert_eq!(s.name, "onnx/clip-tiny-a.onnx");
    assert_eq!(s.image_size, [32, 32]);
    assert_eq!(s.resize, "shortest_edge=32,bicubic,center_crop=32x32");
    assert_eq!(s.method.as_deref(), Some("zero-shot"));
    assert_eq!(s.template.as_deref(), Some("a photo of a {}."));
    assert_eq!(s.gates, None, "zero-shot export has `ahp.gates` = {{}}");
    assert!(s.gates_text.starts_with("none"), "{}", s.gates_text);
    assert!(s.bytes > 100_000);
    let json = serde_json::to_value(&s).expect("json");
    assert!(json.get("imageSize").is_some() && json.get("gatesText").is_some());

    let b = load("onnx/clip-tiny-b.onnx");
    assert_eq!(b.info().image_size(), (24, 24));
}

#[test]
fn logits_match_transformers() {
    for (file, name) in [
        ("onnx/clip-tiny-a.onnx", "clip-tiny-a"),
        ("onnx/clip-tiny-b.onnx", "clip-tiny-b"),
    ] {
        let m = load(file);
        let (shape, pixels) = reference(name, "pixel_values");
        let (lshape, logits_per_image) = reference(name, "logits_per_image");
        let per_image = shape[1] * shape[2] * shape[3];
        let mut worst = 0f32;
        for i in 0..shape[0] {
            let logits = m
                .logits(&pixels[i * per_image..(i + 1) * per_image])
                .expect("run");
            let expected = &logits_per_image[i * lshape[1]..i * lshape[1] + 6];
            worst = worst.max(max_abs_diff(&logits, expected));
        }
        eprintln!("{name}: max |tract - transformers| logits {worst:.3e}");
        assert!(worst <= 1e-4, "{name}: logits differ by {worst}");
    }
}

#[test]
fn classify_rgba_matches_transformers() {
    let m = load("onnx/clip-tiny-a.onnx");
    let (lshape, logits_per_image) = reference("clip-tiny-a", "logits_per_image");
    let cols = lshape[1];
    for (i, path) in images().iter().enumerate() {
        let (buf, w, h) = rgba(path);
        let c = m.classify_rgba(&buf, w, h, 5).expect("classify");
        assert_eq!(c.top.len(), 5);
        assert_eq!(c.probs.len(), 6);
        assert!(c.top.windows(2).all(|p| p[0].prob >= p[1].prob), "sorted");
        assert!((c.probs.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(c.timing.total_ms >= c.timing.inference_ms && c.timing.inference_ms >= 0.0);
        let expected = softmax(&logits_per_image[i * cols..i * cols + 6]);
        let jpeg = path.extension().is_some_and(|e| e == "jpg");
        let tol = if jpeg { 1e-3 } else { 1e-4 };
        let d = max_abs_diff(&c.probs, &expected);
        eprintln!("{}: max |p - transformers| {d:.2e}", path.display());
        assert!(d <= tol, "{}: probabilities differ by {d}", path.display());
        for p in &c.top {
            assert_eq!(p.label, CLASSES[p.index]);
            assert_eq!(p.prob, c.probs[p.index]);
        }
    }
    let (buf, w, h) = rgba(&fixture("images/rgb_square.png"));
    assert_eq!(m.classify_rgba(&buf, w, h, 100).expect("all").top.len(), 6);
}

#[test]
fn bad_models_are_clear_errors() {
    let msg = |bytes: &[u8]| match Model::load(bytes, "bad.onnx") {
        Ok(_) => panic!("loaded a bad model"),
        Err(e) => e.to_string(),
    };
    let m = msg(b"");
    assert!(m.contains("bad.onnx") && m.contains("empty"), "{m}");
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let m = msg(&noise);
    assert!(m.starts_with("bad.onnx: "), "{m}");
    let m = msg(b"this is not an onnx file\n");
    assert!(m.starts_with("bad.onnx: "), "{m}");

    // A valid ONNX file without the ahp metadata: names the missing key.
    let original = std::fs::read(fixture("onnx/clip-tiny-a.onnx")).expect("read");
    let stripped = replace_all(&original, b"ahp.labels", b"ahp.lXbels");
    let m = msg(&stripped);
    assert!(m.contains("`ahp.labels`: missing"), "{m}");

    // A truncated model fails, it does not panic.
    let m = msg(&original[..original.len() / 2]);
    assert!(m.starts_with("bad.onnx: "), "{m}");
}

fn replace_all(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = haystack.to_vec();
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            i += from.len();
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn bad_dimensions_and_arguments() {
    let m = load("onnx/clip-tiny-a.onnx");
    let buf = vec![0u8; 4 * 4 * 4];
    let e = m.classify_rgba(&buf, 4, 5, 5).expect_err("wrong size");
    assert!(matches!(e, Error::Dimensions(_)), "{e}");
    assert!(e.to_string().contains("4x5"), "{e}");
    let e = m.classify_rgba(&[], 0, 0, 5).expect_err("empty");
    assert!(matches!(e, Error::Dimensions(_)), "{e}");
    let e = m
        .classify_rgba(&buf, u32::MAX, u32::MAX, 5)
        .expect_err("overflow");
    assert!(matches!(e, Error::Dimensions(_)), "{e}");
    let e = m.classify_rgba(&buf, 4, 4, 0).expect_err("top_k 0");
    assert!(e.to_string().contains("top_k"), "{e}");
    let e = m.logits(&[0.0; 7]).expect_err("wrong pixel count");
    assert!(e.to_string().contains("3x32x32"), "{e}");
}
