//! ARCHITECTURE.md's crate table against the workspace: every member is listed with its path,
//! every listed crate is a member, and each crate's `ahp-*` dependencies are exactly the ones
//! the table gives (so the documented layering is the real one).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `members = [...]` paths of the root Cargo.toml.
fn workspace_members(root: &Path) -> BTreeSet<String> {
    let manifest = read(&root.join("Cargo.toml"));
    let start = manifest.find("members = [").expect("workspace members") + "members = [".len();
    let end = start + manifest[start..].find(']').expect("end of members");
    manifest[start..end]
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

/// The `ahp-*` crates a member's Cargo.toml names under `[dependencies]` (not dev or build).
fn ahp_dependencies(manifest: &str) -> BTreeSet<String> {
    let mut in_deps = false;
    let mut deps = BTreeSet::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps && line.starts_with("ahp-") {
            let name = line.split(['=', '.', ' ']).next().expect("dependency name");
            deps.insert(name.to_string());
        }
    }
    deps
}

/// One row of the table: crate, path, dependencies.
struct Row {
    name: String,
    path: String,
    deps: BTreeSet<String>,
}

/// The rows between the table's begin and end markers.
fn table_rows(doc: &str) -> Vec<Row> {
    let start = doc.find("<!-- crate table").expect("crate table marker");
    let end = doc.find("<!-- end crate table -->").expect("end marker");
    doc[start..end]
        .lines()
        .filter(|l| l.starts_with("| ahp-"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            Row {
                name: cells[1].to_string(),
                path: cells[2].to_string(),
                deps: cells[3]
                    .split(',')
                    .map(str::trim)
                    .filter(|d| d.starts_with("ahp-"))
                    .map(String::from)
                    .collect(),
            }
        })
        .collect()
}

#[test]
fn architecture_table_matches_the_workspace() {
    let root = workspace_root();
    let rows = table_rows(&read(&root.join("ARCHITECTURE.md")));
    let members = workspace_members(&root);
    let listed: BTreeSet<String> = rows.iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        listed, members,
        "ARCHITECTURE.md crate paths vs Cargo.toml members"
    );
    for row in &rows {
        let manifest = read(&root.join(&row.path).join("Cargo.toml"));
        assert!(
            manifest.contains(&format!("name = \"{}\"", row.name)),
            "{}: package name is not {}",
            row.path,
            row.name
        );
        assert_eq!(
            ahp_dependencies(&manifest),
            row.deps,
            "{}: ahp-* dependencies vs ARCHITECTURE.md",
            row.name
        );
    }
}

#[test]
fn architecture_dependencies_point_downward() {
    let rows = table_rows(&read(&workspace_root().join("ARCHITECTURE.md")));
    for (i, row) in rows.iter().enumerate() {
        let above: BTreeSet<String> = rows[..i].iter().map(|r| r.name.clone()).collect();
        for dep in &row.deps {
            assert!(
                above.contains(dep),
                "{} depends on {dep}, which is not listed above it",
                row.name
            );
        }
    }
}
