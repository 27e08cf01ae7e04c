//! A notebook run as text that is the same on every machine, for snapshot tests.
//!
//! What changes between machines or runs is replaced:
//! - durations (`1.2 s`, `350ms`, `12 µs`) become `<duration>`; nothing of the cells' timings
//!   is included;
//! - the repository's path becomes `<repo>`, the shared build folder `<build>`, the home folder
//!   `~`, and anything under `/tmp/` `<tmp>`;
//! - SVG images (an `image/svg+xml` output or an `<svg>` inside HTML) become a summary: their
//!   size in pixels, how many of each drawing element they hold, and their text labels;
//!   base64 PNG payloads become `<png W×H>` (read from the PNG header);
//! - panic messages lose the thread id (`thread 'main' (1234) panicked` → `thread 'main'
//!   panicked`), their backtrace and the `RUST_BACKTRACE` notes, so `RUST_BACKTRACE` does not
//!   matter;
//! - decimals with 5 or more fractional digits are rounded to 4 significant digits (the
//!   library's matrix products pick SIMD code per CPU, so the last digits may differ).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use regex::Regex;

use crate::run::NotebookRun;

/// Rewrites machine- and run-specific parts of a run for a snapshot.
#[derive(Debug)]
pub struct Normalizer {
    replacements: Vec<(String, String)>,
    duration: Regex,
    decimal: Regex,
    tmp: Regex,
    svg: Regex,
    png: Regex,
    thread_id: Regex,
}

impl Normalizer {
    /// A normalizer for runs of notebooks in the repository at `repo` built in `build_dir`.
    pub fn new(repo: &Path, build_dir: &Path) -> Normalizer {
        let mut replacements = Vec::new();
        for (path, name) in [(build_dir, "<build>"), (repo, "<repo>")] {
            replacements.push((path.display().to_string(), name.to_owned()));
            if let Ok(canonical) = path.canonicalize() {
                replacements.push((canonical.display().to_string(), name.to_owned()));
            }
        }
        if let Some(home) = std::env::var_os("HOME") {
            let home = home.to_string_lossy().into_owned();
            if home.len() > 1 {
                replacements.push((home, "~".to_owned()));
            }
        }
        // Longest first, so a path inside another is replaced as a whole.
        replacements.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
        replacements.dedup();
        Normalizer {
            replacements,
            duration: Regex::new(r"\b\d+(?:\.\d+)?\s?(?:ns|µs|us|ms|s|sec|secs|seconds)\b")
                .expect("valid regex"),
            decimal: Regex::new(r"-?\b\d+\.\d{5,}(?:[eE][+-]?\d+)?\b").expect("valid regex"),
            tmp: Regex::new(r"/tmp/[^\s'`\x22)]*").expect("valid regex"),
            svg: Regex::new(r"(?s)<svg\b.*?</svg>").expect("valid regex"),
            png: Regex::new(r"iVBORw0KGgo[A-Za-z0-9+/=]*").expect("valid regex"),
            thread_id: Regex::new(r"(thread '[^']*') \(\d+\)").expect("valid regex"),
        }
    }

    /// `text` with paths, durations, images and long decimals normalized.
    pub fn text(&self, text: &str) -> String {
        let mut s = without_backtraces(text);
        for (from, to) in &self.replacements {
            s = s.replace(from.as_str(), to);
        }
        let s = self.tmp.replace_all(&s, "<tmp>");
        let s = self.thread_id.replace_all(&s, "$1");
        let s = self
            .svg
            .replace_all(&s, |c: &regex::Captures| svg_summary(&c[0]));
        let s = self
            .png
            .replace_all(&s, |c: &regex::Captures| png_summary(&c[0]));
        let s = self.duration.replace_all(&s, "<duration>");
        let s = self
            .decimal
            .replace_all(&s, |c: &regex::Captures| round4(&c[0]));
        s.into_owned()
    }

    /// A run as text: per code cell, its outputs, streams, error and flags, normalized; nothing
    /// about timing.
    pub fn run(&self, run: &NotebookRun) -> String {
        let mut out = String::new();
        for cell in &run.cells {
            let _ = writeln!(out, "── {}", cell.at);
            let mut block = |name: &str, text: &str| {
                if text.trim().is_empty() {
                    return;
                }
                let _ = writeln!(out, "  {name}:");
                for line in self.text(text.trim_end()).lines() {
                    match line.trim_end() {
                        "" => out.push('\n'),
                        line => {
                            let _ = writeln!(out, "    {line}");
                        }
                    }
                }
            };
            for (mime, content) in &cell.outputs {
                block(mime, content);
            }
            block("stdout", &cell.stdout);
            block("stderr", &cell.stderr);
            if let Some(e) = &cell.error {
                block("error", e);
            }
            if cell.panicked {
                let _ = writeln!(out, "  PANICKED");
            }
        }
        if run.cells.len() < run.code_cells {
            let _ = writeln!(
                out,
                "── stopped: {} of {} code cells ran",
                run.cells.len(),
                run.code_cells
            );
        }
        let _ = writeln!(out, "── checks: {}", run.checks());
        out
    }
}

/// `text` without panic backtraces and the notes about `RUST_BACKTRACE`.
fn without_backtraces(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_backtrace = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed == "stack backtrace:" {
            in_backtrace = true;
            continue;
        }
        if in_backtrace {
            let frame = trimmed
                .split_once(':')
                .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if frame || trimmed.starts_with("at ") {
                continue;
            }
            in_backtrace = false;
        }
        if trimmed.starts_with("note: ") && trimmed.contains("RUST_BACKTRACE") {
            continue;
        }
        out.push_str(line);
    }
    out
}

/// An SVG as a stable summary: `<svg W×H: 3 path, 12 text; labels: "a", "b">`.
fn svg_summary(svg: &str) -> String {
    let open_tag = svg.split('>').next().unwrap_or("");
    let attr = |name: &str| {
        let key = format!(" {name}=\"");
        open_tag
            .find(&key)
            .map(|i| &open_tag[i + key.len()..])
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("?")
            .to_owned()
    };
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut labels = Vec::new();
    let mut rest = svg;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let name_end = rest
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .unwrap_or(rest.len());
        let name = &rest[..name_end];
        if name.is_empty() || name.starts_with('!') || name.starts_with('?') || name == "svg" {
            continue;
        }
        *counts.entry(name).or_default() += 1;
        if name == "text" {
            if let Some(gt) = rest.find('>') {
                let body = &rest[gt + 1..];
                let text = body.split('<').next().unwrap_or("").trim();
                if !text.is_empty() {
                    labels.push(format!("{text:?}"));
                }
            }
        }
    }
    let counts: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let mut s = format!(
        "<svg {}×{}: {}",
        attr("width"),
        attr("height"),
        counts.join(", ")
    );
    if !labels.is_empty() {
        s.push_str("; labels: ");
        s.push_str(&labels.join(", "));
    }
    s.push('>');
    s
}

/// A base64 PNG as `<png W×H>`, from the IHDR chunk.
fn png_summary(b64: &str) -> String {
    // Signature (8) + length (4) + "IHDR" (4) + width (4) + height (4) = 24 bytes = 32 base64.
    let bytes = decode_base64(b64.get(..32).unwrap_or(b64)).unwrap_or_default();
    if bytes.len() >= 24 && &bytes[12..16] == b"IHDR" {
        let w = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
        let h = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
        format!("<png {w}×{h}>")
    } else {
        "<png>".to_owned()
    }
}

/// Standard base64 (whitespace and `=` skipped); `None` on any other character.
pub fn decode_base64(b64: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in b64.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' | b' ' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// A decimal rounded to 4 significant digits, `-0` as `0`.
fn round4(text: &str) -> String {
    let Ok(x) = text.parse::<f64>() else {
        return text.to_owned();
    };
    if x == 0.0 {
        return "0".to_owned();
    }
    let magnitude = x.abs().log10().floor() as i32;
    if !(-4..=15).contains(&magnitude) {
        let s = format!("{x:.3e}");
        return s;
    }
    let decimals = (3 - magnitude).max(0) as usize;
    let s = format!("{x:.decimals$}");
    if s.trim_start_matches('-')
        .trim_matches(['0', '.'])
        .is_empty()
    {
        "0".to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n() -> Normalizer {
        Normalizer::new(
            Path::new("/work/repo"),
            Path::new("/work/repo/target/evcxr"),
        )
    }

    #[test]
    fn paths_durations_and_decimals() {
        let t = n().text(
            "read /work/repo/labs/x.ipynb, built in /work/repo/target/evcxr/src in 1.25 s (350ms)\nloss 0.69314718 kl -0.0000012 p 12.3456789 ok 0.5 e 1.234567e-5\nat /tmp/.tmpAbC12/lib.rs:3",
        );
        assert_eq!(
            t,
            "read <repo>/labs/x.ipynb, built in <build>/src in <duration> (<duration>)\nloss 0.6931 kl -1.200e-6 p 12.35 ok 0.5 e 1.235e-5\nat <tmp>"
        );
    }

    #[test]
    fn panics_lose_thread_ids_and_backtraces() {
        let stderr = "\nthread '<unnamed>' (23246) panicked at src/lib.rs:98:14:\nindex out of bounds\nstack backtrace:\n   0: __rustc::rust_begin_unwind\n             at /rustc/abc/library/std/src/panicking.rs:689:5\n  12: ctx::run_user_code_3\nnote: Some details are omitted, run with `RUST_BACKTRACE=full` for a verbose backtrace.\nafter\n";
        assert_eq!(
            n().text(stderr),
            "\nthread '<unnamed>' panicked at src/lib.rs:98:14:\nindex out of bounds\nafter\n"
        );
        assert_eq!(
            n().text("boom\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n"),
            "boom\n"
        );
    }

    #[test]
    fn svg_becomes_a_summary() {
        let svg = "<svg width=\"640\" height=\"480\" viewBox=\"0 0 640 480\" xmlns=\"http://www.w3.org/2000/svg\">\n<rect x=\"0\"/>\n<polyline points=\"1,2 3,4\"/>\n<text x=\"1\">loss</text>\n<text x=\"2\">0.5</text>\n</svg>";
        assert_eq!(
            n().text(svg),
            "<svg 640×480: 1 polyline, 1 rect, 2 text; labels: \"loss\", \"0.5\">"
        );
    }

    #[test]
    fn png_becomes_its_size() {
        // A 1×1 PNG.
        let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
        assert_eq!(
            n().text(&format!("<img src=\"data:image/png;base64,{png}\">")),
            "<img src=\"data:image/png;base64,<png 1×1>\">"
        );
    }
}
