//! `ahp-data emoji` on the committed offline sample (no network): the tree, its licences, the
//! contact sheet, resuming, re-rendering on new settings, and the errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ahp_data::{DomainBedDataset, ScanOptions};

const DESIGNERS: [&str; 5] = [
    "openmoji",
    "openmoji-black",
    "emojione",
    "emojione-monotone",
    "streamline-emojis",
];

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/emoji")
}

fn emoji(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ahp-data"))
        .arg("emoji")
        .args(args)
        .env("AHP_NPM", "/nonexistent/npm")
        .output()
        .expect("run ahp-data")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn render_sample(out: &Path, size: &str) -> Output {
    let sample = sample();
    emoji(&[
        "--out",
        out.to_str().expect("utf-8"),
        "--unpacked",
        sample.to_str().expect("utf-8"),
        "--classes",
        "dog,pizza,rocket",
        "--size",
        size,
        "--quiet",
    ])
}

#[test]
fn the_sample_renders_a_domainbed_tree_with_licences_and_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("emoji");
    let run = render_sample(&out, "32");
    assert!(run.status.success(), "{}", text(&run));
    assert!(
        text(&run).contains("15 rendered, 0 already there"),
        "{}",
        text(&run)
    );
    for d in DESIGNERS {
        for (class, cp) in [("dog", "1f415"), ("pizza", "1f355"), ("rocket", "1f680")] {
            let path = out.join(d).join(class).join(format!("{cp}.png"));
            let img = image::open(&path).expect("png").to_rgb8();
            assert_eq!(img.dimensions(), (32, 32), "{}", path.display());
            let white = img.pixels().filter(|p| p.0 == [255, 255, 255]).count();
            assert!(white < 32 * 32 - 40, "{} shows an icon", path.display());
            assert!(
                white > 32,
                "{} has the background around it",
                path.display()
            );
        }
        let licence =
            std::fs::read_to_string(out.join(d).join("LICENSE.txt")).expect("licence file");
        assert!(licence.contains("Licence of the artwork"), "{licence}");
    }
    let dataset = DomainBedDataset::scan(&out, &ScanOptions::default()).expect("scan");
    assert_eq!(dataset.classes(), ["dog", "pizza", "rocket"]);
    assert_eq!(dataset.domains().len(), 5);

    let again = render_sample(&out, "32");
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        text(&again).contains("0 rendered, 15 already there"),
        "{}",
        text(&again)
    );
    // other pixels are refused, and nothing is removed
    let bigger = render_sample(&out, "48");
    assert!(!bigger.status.success());
    assert!(
        text(&bigger).contains("was rendered differently: size 32 (asked 48)"),
        "{}",
        text(&bigger)
    );
    let img = image::open(out.join("emojione/dog/1f415.png")).expect("png");
    assert_eq!((img.width(), img.height()), (32, 32));
    // fewer classes and designers keep the others
    let sample = sample();
    let subset = emoji(&[
        "--out",
        out.to_str().expect("utf-8"),
        "--unpacked",
        sample.to_str().expect("utf-8"),
        "--classes",
        "dog",
        "--designers",
        "openmoji",
        "--size",
        "32",
        "--quiet",
    ]);
    assert!(subset.status.success(), "{}", text(&subset));
    assert!(out.join("streamline-emojis/rocket/1f680.png").is_file());
    // a pretraining run into a benchmark tree is refused
    let pre = emoji(&[
        "--pretraining",
        "--out",
        out.to_str().expect("utf-8"),
        "--unpacked",
        sample.to_str().expect("utf-8"),
        "--size",
        "32",
        "--quiet",
    ]);
    assert!(!pre.status.success());
    assert!(
        text(&pre).contains("it is a benchmark tree, not a pretraining one"),
        "{}",
        text(&pre)
    );
}

#[test]
fn help_lists_the_options() {
    let run = emoji(&["--help"]);
    assert!(run.status.success());
    for flag in [
        "--out",
        "--cache",
        "--unpacked",
        "--pretraining",
        "--designers",
        "--classes",
        "--size",
        "--sheet",
        "--list-classes",
    ] {
        assert!(text(&run).contains(flag), "{flag}: {}", text(&run));
    }
    let list = emoji(&["--list-classes"]);
    assert!(list.status.success());
    let classes: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert!(classes.len() >= 150, "{} classes", classes.len());
    assert!(
        classes.iter().any(|l| l.starts_with("dog\t1f415\t")),
        "{classes:?}"
    );
}

#[test]
fn the_contact_sheet_has_a_block_per_designer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("emoji");
    let sheet = dir.path().join("sheet.png");
    let sample = sample();
    let run = emoji(&[
        "--out",
        out.to_str().expect("utf-8"),
        "--unpacked",
        sample.to_str().expect("utf-8"),
        "--classes",
        "dog,pizza",
        "--designers",
        "openmoji,emojione",
        "--size",
        "32",
        "--sheet",
        sheet.to_str().expect("utf-8"),
        "--quiet",
    ]);
    assert!(run.status.success(), "{}", text(&run));
    let img = image::open(&sheet).expect("sheet png");
    // 16 columns of 32 px; per designer one row of 32 px and a 16 px gap
    assert_eq!((img.width(), img.height()), (16 * 32, 2 * (32 + 16)));
}

#[test]
fn pretraining_renders_every_emoji_of_the_pretraining_designers_with_captions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("pre");
    let sample = sample();
    let run = emoji(&[
        "--pretraining",
        "--out",
        out.to_str().expect("utf-8"),
        "--unpacked",
        sample.to_str().expect("utf-8"),
        "--size",
        "32",
        "--quiet",
    ]);
    assert!(run.status.success(), "{}", text(&run));
    let captions = std::fs::read_to_string(out.join("captions.jsonl")).expect("captions");
    let lines: Vec<serde_json::Value> = captions
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 3, "{captions}");
    let attribution =
        std::fs::read_to_string(out.join("captions.LICENSE.txt")).expect("captions licence");
    assert!(
        attribution.contains("emojibase-data@17.0.0"),
        "{attribution}"
    );
    let dog = lines
        .iter()
        .find(|l| l["label"] == "dog")
        .expect("dog caption");
    assert_eq!(dog["codepoint"], "1f415");
    assert!(dog["tags"]
        .as_array()
        .is_some_and(|t| t.iter().any(|x| x == "pet")));
    // twemoji and noto name their icons by codepoint; noto-v1 and fluent-emoji only by name
    for d in ["twemoji", "noto", "noto-v1", "fluent-emoji"] {
        let img = image::open(out.join(d).join("1f415.png")).expect("dog png");
        assert_eq!((img.width(), img.height()), (32, 32));
        assert!(out.join(d).join("LICENSE.txt").is_file());
        let designers = dog["designers"].as_array().expect("designers");
        assert!(designers.iter().any(|x| x == d), "{d} in {designers:?}");
    }
    // no benchmark designer in a pretraining tree
    for d in DESIGNERS {
        assert!(!out.join(d).exists(), "{d}");
    }
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("emoji");
    let out_s = out.to_str().expect("utf-8");
    let sample = sample();
    let sample_s = sample.to_str().expect("utf-8");
    for (args, want) in [
        (
            vec![
                "--out",
                out_s,
                "--unpacked",
                sample_s,
                "--classes",
                "unicorn-pizza",
            ],
            "`unicorn-pizza` is not a class",
        ),
        (
            vec![
                "--out",
                out_s,
                "--unpacked",
                sample_s,
                "--designers",
                "twemoji",
            ],
            "pretraining designer",
        ),
        (
            vec![
                "--out",
                out_s,
                "--unpacked",
                sample_s,
                "--designers",
                "comic-sans",
            ],
            "unknown domain 'comic-sans'",
        ),
        (
            vec![
                "--out",
                out_s,
                "--unpacked",
                sample_s,
                "--background",
                "nope",
            ],
            "--background must be RRGGBB",
        ),
        (
            vec!["--out", out_s, "--unpacked", sample_s, "--size", "4"],
            "size",
        ),
        // a class the sample does not hold: the error names the package and the file
        (
            vec![
                "--out",
                out_s,
                "--unpacked",
                sample_s,
                "--classes",
                "bicycle",
                "--designers",
                "openmoji",
            ],
            "package/color/svg/1F6B2.svg",
        ),
    ] {
        let run = emoji(&args);
        assert!(!run.status.success(), "{args:?}");
        assert!(text(&run).contains(want), "{args:?}: {}", text(&run));
        assert!(!text(&run).contains("panicked"), "{}", text(&run));
    }
    // no npm: the error says so and names the package
    let cache = dir.path().join("cache");
    let run = emoji(&[
        "--out",
        out_s,
        "--cache",
        cache.to_str().expect("utf-8"),
        "--designers",
        "emojione",
    ]);
    assert!(!run.status.success());
    let t = text(&run);
    assert!(
        t.contains("@iconify-json/emojione@1.2.3") && t.contains("cannot run `/nonexistent/npm`"),
        "{t}"
    );
    // a directory it did not write is left alone
    let foreign = dir.path().join("foreign");
    std::fs::create_dir_all(&foreign).expect("mkdir");
    std::fs::write(foreign.join("notes.txt"), b"mine").expect("write");
    let run = render_sample(&foreign, "32");
    assert!(!run.status.success());
    assert!(
        text(&run).contains("has no .ahp-emoji.json"),
        "{}",
        text(&run)
    );
    assert_eq!(
        std::fs::read(foreign.join("notes.txt")).expect("kept"),
        b"mine"
    );
}
