//! End-to-end tests of ahp-data: synthetic generation, DomainBed scanning and splitting, and the
//! training / evaluation loaders, on small generated data sets in temporary directories.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ahp_data::loader::augment;
use ahp_data::synth::{self, Shape, Style, SynthConfig};
use ahp_data::{
    BalancedBatcher, DataError, DomainBedDataset, EvalBatches, LoaderConfig, Sample, ScanOptions,
    SplitOptions,
};
use ahp_spec::preprocess::{preprocess_file, to_rgb8, PreprocessConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn small_config(seed: u64) -> SynthConfig {
    SynthConfig {
        seed,
        classes: 3,
        domains: Style::ALL.to_vec(),
        per_class: 5,
        size: 32,
    }
}

/// Every file under `root` but synth's marker (`.ahp-synth.json`), relative path -> bytes.
fn read_tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n != ".ahp-synth.json") {
                let rel = path.strip_prefix(root).expect("under root").to_path_buf();
                out.insert(rel, std::fs::read(&path).expect("readable file"));
            }
        }
    }
    out
}

fn write_png(path: &Path, style: Style, shape: Shape, index: usize) {
    std::fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
    let image = synth::render_sample(0, style, shape, index, 24);
    std::fs::write(path, synth::encode_png(&image, path).expect("encode")).expect("write");
}

/// A generated data set: 4 domains x 3 classes x 5 images (32 px).
fn generated(seed: u64) -> (tempfile::TempDir, DomainBedDataset) {
    let dir = tempfile::tempdir().expect("tempdir");
    synth::generate(&small_config(seed), dir.path()).expect("generate");
    let ds = DomainBedDataset::scan(dir.path(), &ScanOptions::default()).expect("scan");
    (dir, ds)
}

fn loader_config(batch_size: usize, seed: u64) -> LoaderConfig {
    LoaderConfig {
        warn_on_skip: false,
        ..LoaderConfig::new(batch_size, seed, PreprocessConfig::clip(16))
    }
}

// ---------------------------------------------------------------------------------------------
// synth

#[test]
fn synth_is_byte_identical_for_a_seed_and_differs_across_seeds() {
    let (a, b, c) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let summary = synth::generate(&small_config(7), a.path()).expect("generate a");
    synth::generate(&small_config(7), b.path()).expect("generate b");
    synth::generate(&small_config(8), c.path()).expect("generate c");
    assert_eq!(summary.total, 4 * 3 * 5);
    assert_eq!(
        summary.per_domain,
        Style::ALL
            .iter()
            .map(|s| (s.name().to_string(), 15))
            .collect::<Vec<_>>()
    );
    assert_eq!(summary.classes, ["circle", "square", "triangle"]);

    let (ta, tb, tc) = (
        read_tree(a.path()),
        read_tree(b.path()),
        read_tree(c.path()),
    );
    assert_eq!(ta.len(), 60, "no temporary files left behind");
    assert!(ta.keys().all(|p| p.extension().is_some_and(|e| e == "png")));
    assert!(ta.contains_key(Path::new("sketch/triangle/4.png")));
    assert_eq!(ta, tb, "same seed, same bytes");
    assert_eq!(ta.keys().collect::<Vec<_>>(), tc.keys().collect::<Vec<_>>());
    let differing = ta.iter().filter(|(k, v)| tc[*k] != **v).count();
    assert_eq!(differing, ta.len(), "a different seed changes every image");

    // Images differ within a class too, and the in-memory renderer is what was written.
    assert_ne!(
        ta[Path::new("photo/circle/0.png")],
        ta[Path::new("photo/circle/1.png")]
    );
    let decoded = image::load_from_memory(&ta[Path::new("cartoon/square/3.png")])
        .expect("decodable png")
        .to_rgb8();
    assert_eq!(
        decoded,
        synth::render_sample(7, Style::Cartoon, Shape::Square, 3, 32)
    );
}

#[test]
fn synth_rejects_bad_configs_without_writing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let cases = [
        (
            SynthConfig {
                classes: Shape::ALL.len() + 1,
                ..SynthConfig::default()
            },
            "classes",
        ),
        (
            SynthConfig {
                size: 12,
                ..SynthConfig::default()
            },
            "size",
        ),
        (
            SynthConfig {
                per_class: 0,
                ..SynthConfig::default()
            },
            "per_class",
        ),
    ];
    for (cfg, field) in cases {
        let err = synth::generate(&cfg, &out).expect_err(field);
        assert!(
            matches!(&err, DataError::InvalidOption { field: f, .. } if *f == field),
            "{err}"
        );
        assert!(!out.exists(), "nothing written for a bad {field}");
    }
    let err = Style::parse_list("photo,watercolor").expect_err("unknown domain");
    let msg = err.to_string();
    assert!(
        msg.contains("'watercolor'") && msg.contains("photo, sketch, cartoon, painting"),
        "{msg}"
    );
}

/// Per-image statistics that tell the styles apart.
struct Stats {
    /// Mean HSV saturation.
    saturation: f64,
    /// Mean luminance in [0, 1].
    luminance: f64,
    /// Mean absolute difference between horizontal neighbours (high-frequency energy).
    hf: f64,
    /// Fraction of pixels sharing the most common colour (flatness).
    modal: f64,
}

fn stats(image: &image::RgbImage) -> Stats {
    let n = f64::from(image.width() * image.height());
    let (mut sat, mut lum, mut hf) = (0.0, 0.0, 0.0);
    let mut counts: BTreeMap<[u8; 3], usize> = BTreeMap::new();
    for (x, y, p) in image.enumerate_pixels() {
        let [r, g, b] = p.0.map(f64::from);
        let (mx, mn) = (r.max(g).max(b), r.min(g).min(b));
        sat += if mx > 0.0 { (mx - mn) / mx } else { 0.0 };
        lum += (0.299 * r + 0.587 * g + 0.114 * b) / 255.0;
        if x + 1 < image.width() {
            let q = image.get_pixel(x + 1, y).0.map(f64::from);
            hf += ((r - q[0]).abs() + (g - q[1]).abs() + (b - q[2]).abs()) / 3.0;
        }
        *counts.entry(p.0).or_default() += 1;
    }
    let modal = counts.values().copied().max().unwrap_or(0) as f64 / n;
    Stats {
        saturation: sat / n,
        luminance: lum / n,
        hf: hf / (n - f64::from(image.height())),
        modal,
    }
}

#[test]
fn synth_styles_have_clearly_different_statistics() {
    let mut mean: BTreeMap<&str, [f64; 4]> = BTreeMap::new();
    let mut max_sat_sketch: f64 = 0.0;
    let shapes = &Shape::ALL[..6];
    let per = 3;
    for style in Style::ALL {
        let acc = mean.entry(style.name()).or_default();
        for &shape in shapes {
            for i in 0..per {
                let s = stats(&synth::render_sample(1, style, shape, i, 64));
                if style == Style::Sketch {
                    max_sat_sketch = max_sat_sketch.max(s.saturation);
                }
                for (a, v) in acc
                    .iter_mut()
                    .zip([s.saturation, s.luminance, s.hf, s.modal])
                {
                    *a += v / (shapes.len() * per) as f64;
                }
            }
        }
    }
    eprintln!("[saturation, luminance, hf, modal] per style: {mean:?}");
    let [photo, sketch, cartoon, painting] =
        ["photo", "sketch", "cartoon", "painting"].map(|s| mean[s]);
    // Sketches are grayscale and bright.
    assert_eq!(max_sat_sketch, 0.0);
    for other in [photo, cartoon, painting] {
        assert!(other[0] > 0.2, "coloured styles are saturated: {other:?}");
        assert!(
            sketch[1] > other[1] + 0.1,
            "sketch brighter: {sketch:?} vs {other:?}"
        );
    }
    // Cartoons are flat: a large share of pixels has exactly the background colour.
    assert!(cartoon[3] > 0.5, "{cartoon:?}");
    for other in [photo, sketch, painting] {
        assert!(other[3] < 0.3, "only cartoons are flat: {other:?}");
    }
    // Photos are noisy, paintings are smooth.
    assert!(photo[2] > 2.0 * painting[2], "{photo:?} vs {painting:?}");
    assert!(photo[2] > 1.5 * cartoon[2], "{photo:?} vs {cartoon:?}");
}

// ---------------------------------------------------------------------------------------------
// domainbed: scan

#[test]
fn scan_sorts_domains_classes_and_images_and_ignores_other_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    // Domain "b" lacks class "z", domain "a" lacks class "x".
    write_png(&root.join("b/y/2.png"), Style::Photo, Shape::Star, 0);
    write_png(&root.join("b/y/10.PNG"), Style::Photo, Shape::Star, 1);
    write_png(&root.join("b/x/k.png"), Style::Photo, Shape::Ring, 0);
    write_png(&root.join("a/z/q.png"), Style::Sketch, Shape::Heart, 0);
    write_png(&root.join("a/y/p.png"), Style::Sketch, Shape::Star, 0);
    std::fs::write(root.join("b/y/notes.txt"), "not an image").expect("write");
    std::fs::write(root.join("b/y/.hidden.png"), "hidden").expect("write");
    std::fs::write(root.join("README"), "top-level file").expect("write");
    std::fs::create_dir_all(root.join(".cache/x")).expect("mkdir");

    let err = DomainBedDataset::scan(root, &ScanOptions::default()).expect_err("missing class");
    match &err {
        DataError::MissingClass { domain, class, .. } => {
            assert_eq!((domain.as_str(), class.as_str()), ("a", "x"));
        }
        other => panic!("expected MissingClass, got {other}"),
    }
    assert!(err.to_string().contains("domain 'a'") && err.to_string().contains("class 'x'"));

    let ds = DomainBedDataset::scan(
        root,
        &ScanOptions {
            allow_missing_classes: true,
        },
    )
    .expect("lenient scan");
    assert_eq!(ds.domains(), ["a", "b"]);
    assert_eq!(ds.classes(), ["x", "y", "z"]);
    assert_eq!(ds.len(), 5);
    let rel = |s: &Sample| {
        s.path
            .strip_prefix(root)
            .expect("under root")
            .to_string_lossy()
            .into_owned()
    };
    let b: Vec<(String, u32, u32)> = ds
        .domain_samples(1)
        .iter()
        .map(|s| (rel(s), s.domain, s.class))
        .collect();
    assert_eq!(
        b,
        [
            ("b/x/k.png".to_string(), 1, 0),
            ("b/y/10.PNG".to_string(), 1, 1),
            ("b/y/2.png".to_string(), 1, 1),
        ]
    );
    let a: Vec<(String, u32)> = ds
        .domain_samples(0)
        .iter()
        .map(|s| (rel(s), s.class))
        .collect();
    assert_eq!(
        a,
        [("a/y/p.png".to_string(), 1), ("a/z/q.png".to_string(), 2)]
    );
}

#[test]
fn scan_rejects_empty_domains_and_bad_roots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write_png(
        &root.join("full/cat/0.png"),
        Style::Cartoon,
        Shape::Circle,
        0,
    );
    std::fs::create_dir_all(root.join("hollow/cat")).expect("mkdir");
    std::fs::write(root.join("hollow/cat/readme.txt"), "no images").expect("write");
    let lenient = ScanOptions {
        allow_missing_classes: true,
    };
    let err = DomainBedDataset::scan(root, &lenient).expect_err("empty domain");
    assert!(
        matches!(&err, DataError::EmptyDomain { domain, .. } if domain == "hollow"),
        "{err}"
    );
    assert!(err.to_string().contains("'hollow'"), "{err}");

    let missing = root.join("nope");
    let err = DomainBedDataset::scan(&missing, &lenient).expect_err("missing root");
    assert!(matches!(err, DataError::RootNotFound { .. }), "{err}");
    assert!(err.to_string().contains("nope"), "{err}");
    let file = root.join("full/cat/0.png");
    let err = DomainBedDataset::scan(&file, &lenient).expect_err("file root");
    assert!(matches!(err, DataError::NotADirectory { .. }), "{err}");
    let empty = tempfile::tempdir().expect("tempdir");
    let err = DomainBedDataset::scan(empty.path(), &lenient).expect_err("no domains");
    assert!(matches!(err, DataError::NoDomains { .. }), "{err}");
}

// ---------------------------------------------------------------------------------------------
// domainbed: split

#[test]
fn split_is_disjoint_complete_sized_and_deterministic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = SynthConfig {
        classes: 2,
        per_class: 10,
        size: 16,
        ..SynthConfig::default()
    };
    synth::generate(&cfg, dir.path()).expect("generate");
    let ds = DomainBedDataset::scan(dir.path(), &ScanOptions::default()).expect("scan");
    assert_eq!(ds.domains(), ["cartoon", "painting", "photo", "sketch"]);
    let opts = SplitOptions {
        target_domains: vec!["sketch".into()],
        seed: 3,
        ..SplitOptions::default()
    };
    let split = ds.split(&opts).expect("split");
    assert_eq!(split.source_names(), ["cartoon", "painting", "photo"]);
    assert_eq!(split.target_names(), ["sketch"]);
    assert_eq!(split.targets[0].samples, ds.domain_samples(3));
    for src in &split.sources {
        assert_eq!(
            (src.in_split.len(), src.out_split.len()),
            (16, 4),
            "{}",
            src.name
        );
        let ins: BTreeSet<_> = src.in_split.iter().collect();
        let outs: BTreeSet<_> = src.out_split.iter().collect();
        assert!(ins.is_disjoint(&outs));
        let all: BTreeSet<_> = ins.union(&outs).copied().collect();
        let domain: BTreeSet<_> = ds.domain_samples(src.domain as usize).iter().collect();
        assert_eq!(all, domain, "in + out cover {}", src.name);
        assert!(src.in_split.iter().all(|s| s.domain == src.domain));
    }
    assert_eq!(split, ds.split(&opts).expect("again"), "deterministic");
    let other_seed = ds
        .split(&SplitOptions {
            seed: 4,
            ..opts.clone()
        })
        .expect("seed 4");
    assert_ne!(other_seed.sources, split.sources, "the seed matters");

    // A domain's split does not depend on the other domains: change the targets, or remove a
    // domain from the dataset altogether.
    let photo = |s: &ahp_data::Split| {
        s.sources
            .iter()
            .find(|d| d.name == "photo")
            .map(|d| (d.in_split.clone(), d.out_split.clone()))
            .expect("photo is a source")
    };
    let retargeted = ds
        .split(&SplitOptions {
            target_domains: vec!["cartoon".into(), "painting".into()],
            ..opts.clone()
        })
        .expect("other targets");
    assert_eq!(photo(&retargeted), photo(&split));
    std::fs::remove_dir_all(dir.path().join("cartoon")).expect("rm cartoon");
    let smaller = DomainBedDataset::scan(dir.path(), &ScanOptions::default()).expect("rescan");
    let split_smaller = smaller.split(&opts).expect("split smaller");
    let strip = |v: Vec<Sample>| v.into_iter().map(|s| s.path).collect::<Vec<_>>();
    let (a_in, a_out) = photo(&split_smaller);
    let (b_in, b_out) = photo(&split);
    assert_eq!((strip(a_in), strip(a_out)), (strip(b_in), strip(b_out)));
}

#[test]
fn split_errors_name_domains_and_options() {
    let (_dir, ds) = generated(0);
    let err = ds
        .split(&SplitOptions {
            target_domains: vec!["clipart".into()],
            ..SplitOptions::default()
        })
        .expect_err("unknown target");
    let msg = err.to_string();
    assert!(
        msg.contains("'clipart'") && msg.contains("cartoon, painting, photo, sketch"),
        "{msg}"
    );
    let err = ds
        .split(&SplitOptions {
            target_domains: ds.domains().to_vec(),
            ..SplitOptions::default()
        })
        .expect_err("no source");
    assert!(matches!(err, DataError::NoSourceDomains { .. }), "{err}");
    let err = ds
        .split(&SplitOptions {
            holdout_fraction: 1.0,
            ..SplitOptions::default()
        })
        .expect_err("holdout 1");
    assert!(err.to_string().contains("holdout_fraction"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// loader

#[test]
fn batches_cover_every_source_domain_and_resume_exactly() {
    let (_dir, ds) = generated(0);
    let split = ds
        .split(&SplitOptions {
            target_domains: vec!["painting".into()],
            ..SplitOptions::default()
        })
        .expect("split");
    let sources: BTreeSet<u32> = split.sources.iter().map(|s| s.domain).collect();
    let batcher = BalancedBatcher::new(&split, loader_config(7, 11)).expect("batcher");
    let run: Vec<_> = batcher
        .iter_from(0)
        .take(6)
        .collect::<Result<_, _>>()
        .expect("uninterrupted run");
    for (k, batch) in run.iter().enumerate() {
        assert_eq!(batch.step, k as u64);
        assert_eq!(batch.shape(), [7, 3, 16, 16]);
        assert_eq!(batch.images.len(), 7 * 3 * 16 * 16);
        assert!(batch.images.iter().all(|v| v.is_finite()));
        let present: BTreeSet<u32> = batch.domains.iter().copied().collect();
        assert_eq!(present, sources, "batch {k} has every source domain");
        for (i, src) in split.sources.iter().enumerate() {
            let n = batch.domains.iter().filter(|&&d| d == src.domain).count();
            assert_eq!(n, batcher.domain_counts(k as u64)[i]);
            assert!((2..=3).contains(&n), "7 over 3 domains: {n}");
        }
        for ((path, &label), &domain) in batch.paths.iter().zip(&batch.labels).zip(&batch.domains) {
            let class = path
                .parent()
                .and_then(|p| p.file_name())
                .expect("class dir");
            assert_eq!(ds.classes()[label as usize], class.to_string_lossy());
            assert!(path.starts_with(ds.root().join(&ds.domains()[domain as usize])));
        }
    }
    assert_ne!(run[0].paths, run[1].paths);
    // A fresh batcher (a resumed run) reproduces any step.
    let resumed = BalancedBatcher::new(&split, loader_config(7, 11)).expect("batcher");
    assert_eq!(resumed.batch_at(4).expect("step 4"), run[4]);
    let tail: Vec<_> = resumed
        .iter_from(3)
        .take(3)
        .collect::<Result<_, _>>()
        .expect("resumed run");
    assert_eq!(tail, run[3..]);
    // Another seed gives other batches.
    let other = BalancedBatcher::new(&split, loader_config(7, 12)).expect("batcher");
    assert_ne!(other.batch_at(0).expect("step 0").images, run[0].images);
    assert_eq!(batcher.stats().batches, 6);
    assert_eq!(batcher.stats().skipped, 0);

    let err = BalancedBatcher::new(&split, loader_config(2, 0)).expect_err("batch < domains");
    assert!(
        err.to_string().contains("batch_size") && err.to_string().contains("(3)"),
        "{err}"
    );
}

#[test]
fn prefetching_yields_the_synchronous_batches() {
    let (_dir, ds) = generated(1);
    let split = ds.split(&SplitOptions::default()).expect("split");
    let batcher = BalancedBatcher::new(&split, loader_config(8, 5)).expect("batcher");
    let sync: Vec<_> = batcher
        .iter_from(2)
        .take(5)
        .collect::<Result<_, _>>()
        .expect("sync");
    let prefetched: Vec<_> = batcher
        .prefetch(2, 2)
        .expect("prefetcher")
        .take(5)
        .collect::<Result<_, _>>()
        .expect("prefetched");
    assert_eq!(prefetched, sync);
    // Dropping a prefetcher whose channel is full stops its thread (no hang).
    let mut p = batcher.prefetch(0, 1).expect("prefetcher");
    assert_eq!(p.next().expect("one batch").expect("ok").step, 0);
    drop(p);
}

#[test]
fn augmentation_is_shaped_finite_and_differs_from_eval_preprocessing() {
    let (_dir, ds) = generated(2);
    let sample = &ds.domain_samples(0)[0];
    let pre = PreprocessConfig::clip(24);
    let eval = preprocess_file(&sample.path, &pre).expect("eval preprocessing");
    let image = to_rgb8(&ahp_spec::preprocess::load_image(&sample.path).expect("load"));
    let aug_cfg = ahp_data::AugmentConfig::default();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut distinct = BTreeSet::new();
    for _ in 0..8 {
        let a = augment(&image, &pre, &aug_cfg, &mut rng).expect("augment");
        assert_eq!((a.height, a.width, a.data.len()), (24, 24, 3 * 24 * 24));
        assert!(a.data.iter().all(|v| v.is_finite()));
        let diff: f32 = a
            .data
            .iter()
            .zip(&eval.data)
            .map(|(x, y)| (x - y).abs())
            .sum::<f32>()
            / a.data.len() as f32;
        assert!(diff > 0.01, "augmented equals eval (mean |diff| {diff})");
        distinct.insert(a.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    }
    assert!(distinct.len() >= 7, "augmentations vary");
    // Same generator state, same output.
    let x = augment(&image, &pre, &aug_cfg, &mut ChaCha8Rng::seed_from_u64(1)).expect("a");
    let y = augment(&image, &pre, &aug_cfg, &mut ChaCha8Rng::seed_from_u64(1)).expect("b");
    assert_eq!(x, y);
    // Without augmentation, training batches equal evaluation preprocessing.
    let plain = BalancedBatcher::from_domains(
        vec![vec![sample.clone()]],
        LoaderConfig {
            augment: None,
            warn_on_skip: false,
            ..LoaderConfig::new(1, 0, pre.clone())
        },
    )
    .expect("batcher");
    assert_eq!(plain.batch_at(0).expect("batch").images, eval.data);
}

#[test]
fn unreadable_images_are_skipped_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    synth::generate(&small_config(0), dir.path()).expect("generate");
    let bad = dir.path().join("photo/circle/zz_broken.png");
    std::fs::write(&bad, b"definitely not a png").expect("write");
    std::fs::write(dir.path().join("photo/square/empty.jpg"), b"").expect("write");
    let ds = DomainBedDataset::scan(dir.path(), &ScanOptions::default()).expect("scan");
    assert_eq!(
        ds.domain_samples(ds.domain_index("photo").expect("photo"))
            .len(),
        17
    );

    // Evaluation over the photo domain: both bad files skipped, the rest delivered in order.
    let photo = ds.domain_samples(ds.domain_index("photo").expect("photo"));
    let pre = PreprocessConfig::clip(16);
    let mut eval = EvalBatches::new(photo, 4, &pre)
        .expect("eval")
        .warn_on_skip(false);
    assert_eq!(eval.num_batches(), 5);
    let mut delivered = Vec::new();
    let mut skipped = Vec::new();
    for batch in eval.by_ref() {
        let batch = batch.expect("some images readable");
        assert_eq!(batch.images.len(), batch.len() * 3 * 16 * 16);
        delivered.extend(batch.paths.clone());
        skipped.extend(batch.skipped.iter().map(|s| s.path.clone()));
        for s in &batch.skipped {
            assert!(s.error.contains(&*s.path.to_string_lossy()), "{}", s.error);
        }
    }
    assert_eq!(eval.skipped(), 2);
    assert_eq!(skipped.len(), 2);
    assert!(skipped.contains(&bad));
    let expected: Vec<PathBuf> = photo
        .iter()
        .map(|s| s.path.clone())
        .filter(|p| !skipped.contains(p))
        .collect();
    assert_eq!(delivered, expected, "fixed order");

    // Training: a domain of 2 images (one broken) drawn 2 at a time always hits the bad one.
    let good = photo
        .iter()
        .find(|s| s.path != bad)
        .expect("a good image")
        .clone();
    let broken = photo
        .iter()
        .find(|s| s.path == bad)
        .expect("the bad image")
        .clone();
    let batcher =
        BalancedBatcher::from_domains(vec![vec![good, broken.clone()]], loader_config(2, 0))
            .expect("batcher");
    let batch = batcher.batch_at(0).expect("one readable image");
    assert_eq!(batch.len(), 1);
    assert_eq!(batch.skipped.len(), 1);
    assert_eq!(batch.skipped[0].path, bad);
    assert_eq!(batcher.stats().skipped, 1);
    assert_eq!(batcher.stats().images, 1);

    // A batch with nothing readable is an error naming the file.
    let all_bad = BalancedBatcher::from_domains(vec![vec![broken.clone()]], loader_config(1, 0))
        .expect("batcher");
    let err = all_bad.batch_at(0).expect_err("nothing readable");
    assert!(matches!(err, DataError::UnreadableBatch { .. }), "{err}");
    assert!(err.to_string().contains("zz_broken.png"), "{err}");
    let mut prefetch = all_bad.prefetch(0, 2).expect("prefetcher");
    assert!(prefetch.next().expect("an item").is_err());
    assert!(
        prefetch.next().is_none(),
        "the prefetcher stops after an error"
    );
}

#[test]
fn eval_batches_match_plain_preprocessing_in_fixed_chunks() {
    let (_dir, ds) = generated(3);
    let samples = &ds.domain_samples(1)[..10];
    let pre = PreprocessConfig::clip(20);
    let batches: Vec<_> = EvalBatches::new(samples, 4, &pre)
        .expect("eval")
        .collect::<Result<_, _>>()
        .expect("all readable");
    assert_eq!(
        batches.iter().map(|b| b.len()).collect::<Vec<_>>(),
        [4, 4, 2]
    );
    let per = 3 * 20 * 20;
    for (chunk, batch) in batches.iter().enumerate() {
        assert_eq!(batch.step, chunk as u64);
        for (j, sample) in samples[chunk * 4..].iter().take(batch.len()).enumerate() {
            assert_eq!(batch.labels[j], sample.class);
            assert_eq!(batch.domains[j], 1);
            let expected = preprocess_file(&sample.path, &pre).expect("preprocess");
            assert_eq!(batch.images[j * per..(j + 1) * per], expected.data[..]);
        }
    }
    assert!(EvalBatches::new(samples, 0, &pre).is_err());
}

#[test]
fn synth_again_leaves_no_stale_images_and_refuses_foreign_directories() {
    // D16: generating into a directory written before once left the previous images behind.
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("data");
    let big = SynthConfig {
        per_class: 3,
        ..small_config(1)
    };
    synth::generate(&big, &root).expect("first");
    let small = SynthConfig {
        per_class: 2,
        domains: vec![big.domains[0]],
        ..big.clone()
    };
    synth::generate(&small, &root).expect("second");
    let files: Vec<PathBuf> = read_tree(&root)
        .into_keys()
        .filter(|f| f.extension().is_some_and(|e| e == "png"))
        .collect();
    let expected = small.domains.len() * small.shapes().expect("shapes").len() * 2;
    assert_eq!(files.len(), expected, "{files:?}");
    assert!(
        files.iter().all(|f| f.starts_with(small.domains[0].name())),
        "{files:?}"
    );

    let foreign = dir.path().join("foreign");
    std::fs::create_dir_all(&foreign).expect("mkdir");
    std::fs::write(foreign.join("notes.txt"), b"mine").expect("write");
    let err = synth::generate(&small, &foreign).expect_err("foreign directory");
    assert!(err.to_string().contains("not empty"), "{err}");
    assert_eq!(
        std::fs::read(foreign.join("notes.txt")).ok(),
        Some(b"mine".to_vec())
    );
}
