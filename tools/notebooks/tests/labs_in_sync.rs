//! `labs/` is what the generator makes of `solutions/` (like `kto-lab-notebooks check`).

use std::path::Path;

use kto_lab_notebooks::generate;

fn assert_in_sync(solutions: &Path, labs: &Path) {
    let stale = generate::check(solutions, labs).expect("the solutions generate");
    assert!(
        stale.is_empty(),
        "stale labs:\n{}\nrun `cargo run --bin kto-lab-notebooks -- generate` and commit the labs",
        stale
            .iter()
            .map(|s| format!("  {s}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn labs_are_generated_from_the_solutions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists");
    assert_in_sync(&root.join("solutions"), &root.join("labs"));
}

#[test]
fn the_fixture_lab_is_generated_from_its_solution() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    assert_in_sync(&data.join("solutions"), &data.join("labs"));
}
