//! The guided tour that `cargo run --release` prints: each lab's key result on built-in data.

use anyhow::Result;
use std::io::Write;
use std::path::Path;

/// Runs the tour, printing to `w` and writing files under `out`.
pub fn run(out: &Path, w: &mut impl Write) -> Result<()> {
    let _ = out;
    writeln!(w, "kto-lab tour")?;
    Ok(())
}
