//! ahp-spec preprocessing vs. transformers' `CLIPImageProcessor` (PIL backend), on the
//! committed sample images and the reference `pixel_values` made by
//! `tests/fixtures/make_fixtures.py`.

use std::path::{Path, PathBuf};

use ahp_spec::preprocess::{load_image, preprocess, preprocess_file};
use ahp_spec::tolerance::{PREPROCESS_VS_PIL, PREPROCESS_VS_PIL_LOSSLESS};
use ahp_spec::PreprocessConfig;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

struct Reference {
    images: Vec<String>,
    pixel_values: Vec<f32>,
    size: usize,
}

fn reference(model: &str) -> Reference {
    let dir = fixtures().join("models").join(model);
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("reference.json")).expect("reference.json"),
    )
    .expect("reference.json is JSON");
    let images = json["images"]
        .as_array()
        .expect("images array")
        .iter()
        .map(|v| v.as_str().expect("image name").to_string())
        .collect::<Vec<_>>();
    let bytes = std::fs::read(dir.join("reference.safetensors")).expect("reference.safetensors");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("valid safetensors");
    let view = st.tensor("pixel_values").expect("pixel_values");
    assert_eq!(view.dtype(), safetensors::Dtype::F32);
    let shape = view.shape().to_vec();
    assert_eq!(shape[0], images.len());
    let pixel_values = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Reference {
        images,
        pixel_values,
        size: shape[2],
    }
}

/// Returns the max abs difference per image.
fn compare(model: &str) -> Vec<(String, f32)> {
    let r = reference(model);
    let cfg = PreprocessConfig::from_hf_file(
        &fixtures()
            .join("models")
            .join(model)
            .join("preprocessor_config.json"),
    )
    .expect("preprocessor_config.json");
    assert_eq!(cfg.shortest_edge as usize, r.size);
    let per = 3 * r.size * r.size;
    r.images
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let ours =
                preprocess_file(&fixtures().join("images").join(name), &cfg).expect("preprocess");
            assert_eq!(ours.data.len(), per, "{name}");
            let theirs = &r.pixel_values[i * per..(i + 1) * per];
            let max = ours
                .data
                .iter()
                .zip(theirs)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            (name.clone(), max)
        })
        .collect()
}

fn check(model: &str) {
    let results = compare(model);
    for (name, max) in &results {
        eprintln!("{model} {name}: max |ahp - CLIPImageProcessor| = {max:.3e}");
    }
    for (name, max) in results {
        let max = &max;
        let lossless = !name.ends_with(".jpg");
        let tol = if lossless {
            PREPROCESS_VS_PIL_LOSSLESS
        } else {
            PREPROCESS_VS_PIL
        };
        assert!(
            *max <= tol,
            "{model}/{name}: max abs diff {max} exceeds {tol}"
        );
    }
}

#[test]
fn matches_clip_image_processor_model_a() {
    check("clip-tiny-a");
}

#[test]
fn matches_clip_image_processor_model_b() {
    check("clip-tiny-b");
}

#[test]
fn decodes_every_committed_mode() {
    for name in ["gray.png", "la.png", "palette.png", "rgba.png", "wide.jpg"] {
        let img = load_image(&fixtures().join("images").join(name)).expect(name);
        let out = preprocess(&img, &PreprocessConfig::clip(16)).expect(name);
        assert_eq!(out.data.len(), 3 * 16 * 16);
        assert!(out.data.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn bad_images_are_clear_errors() {
    let bad = fixtures().join("bad");
    let cases = [
        ("empty.png", "empty file (0 bytes)"),
        ("truncated.png", "cannot decode"),
        (
            "not_an_image.png",
            "unsupported or unrecognized image format",
        ),
        ("does_not_exist.png", "cannot read file"),
    ];
    for (name, expected) in cases {
        let err = preprocess_file(&bad.join(name), &PreprocessConfig::clip(16))
            .expect_err(name)
            .to_string();
        assert!(err.contains(name), "error must name the file: {err}");
        assert!(
            err.contains(expected),
            "{name}: expected `{expected}` in `{err}`"
        );
    }
}
