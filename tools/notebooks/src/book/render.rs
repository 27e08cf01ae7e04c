//! A notebook's cells as Markdown: fences that cannot clash, Rust code without the solution
//! markers, outputs as text, HTML or images (with alt text from the chart's title).

use super::*;

pub(super) fn display_path(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}

pub(super) fn provenance_note(path: &Path) -> String {
    let lab = path
        .file_name()
        .map(|n| format!("labs/{}", n.to_string_lossy()))
        .unwrap_or_default();
    format!(
        "> This chapter is the solution notebook `{}` as it runs: every code cell with its \
         outputs. Exercises show the student's stub first (as in `{lab}`), the solution folded \
         under it.",
        display_path(path)
    )
}

/// A markdown cell with its fenced code blocks made safe for `mdbook test`: a `rust` block
/// (a hint's snippet is not a program) gets `ignore`, a block with no language becomes `text`
/// (rustdoc would compile it as Rust).
pub(super) fn markdown_fences(md: &str) -> String {
    let mut out = String::with_capacity(md.len() + 32);
    // The open fence: its character and length.
    let mut open: Option<(char, usize)> = None;
    for line in md.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let ending = &line[body.len()..];
        let t = body.trim_start();
        let indent = &body[..body.len() - t.len()];
        let fence_char = t.chars().next().filter(|c| *c == '`' || *c == '~');
        let run = fence_char.map_or(0, |c| t.len() - t.trim_start_matches(c).len());
        match (open, fence_char) {
            (None, Some(c)) if run >= 3 && indent.len() < 4 => {
                open = Some((c, run));
                let info = t[run..].trim();
                let lang = info.split([',', ' ']).next().unwrap_or("");
                let fence = &t[..run];
                let info = if info.is_empty() {
                    "text".to_owned()
                } else if lang == "rust"
                    && !info
                        .split([',', ' '])
                        .any(|a| matches!(a, "ignore" | "no_run" | "noplayground" | "compile_fail"))
                {
                    format!("{info},ignore")
                } else {
                    info.to_owned()
                };
                out.push_str(&format!("{indent}{fence}{info}{ending}"));
            }
            (Some((c, n)), Some(fc)) if fc == c && run >= n && t[run..].trim().is_empty() => {
                open = None;
                out.push_str(line);
            }
            _ => out.push_str(line),
        }
    }
    out
}

/// A name that can be a file name as it is (cell ids are `lab3-34`).
pub(super) fn safe_file_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A code cell as a rust block, and for an exercise its solution, folded: the cell shows the
/// student's stub (each solution region as its `todo!()`), the solution has no marker lines.
pub(super) fn code_blocks(source: &str) -> (String, Option<String>) {
    let has_solution = source.lines().any(|l| {
        let t = l.trim_start();
        t.starts_with(BEGIN) || t.starts_with(END)
    });
    if !has_solution {
        return (fenced("rust,ignore", &rust_lines(source)), None);
    }
    let stub = strip_solutions(source).unwrap_or_else(|_| source.to_owned());
    let solution: String = source
        .split_inclusive('\n')
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with(BEGIN) || t.starts_with(END))
        })
        .collect();
    (
        fenced("rust,ignore", &rust_lines(&stub)),
        Some(format!(
            "<details class=\"solution\"><summary>Solution</summary>\n\n{}\n\n</details>",
            fenced("rust,ignore", &rust_lines(&solution))
        )),
    )
}

/// mdBook hides lines of a rust block that start with `# ` (rustdoc's hidden lines) and shows
/// `##` as `#`: escape such lines so every line shows.
pub(super) fn rust_lines(source: &str) -> String {
    source
        .split_inclusive('\n')
        .map(|l| {
            let t = l.trim_start();
            if t == "#" || t.starts_with("# ") || t.starts_with("#\n") || t.starts_with("##") {
                let indent = &l[..l.len() - t.len()];
                format!("{indent}#{t}")
            } else {
                l.to_owned()
            }
        })
        .collect()
}

/// `body` in a fenced block with a fence longer than any backtick run inside.
pub(super) fn fenced(info: &str, body: &str) -> String {
    let body = body.trim_end();
    let longest = body
        .lines()
        .map(|l| {
            let t = l.trim_start();
            t.len() - t.trim_start_matches('`').len()
        })
        .max()
        .unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}{info}\n{body}\n{fence}")
}

/// The markdown blocks of one cell's outputs; images go into `assets`.
pub(super) fn outputs(
    cell: &CellRun,
    stem: &str,
    name: &str,
    normalizer: &Normalizer,
    assets: &mut BTreeMap<String, Vec<u8>>,
) -> Vec<String> {
    let mut blocks = Vec::new();
    if !cell.stdout.trim().is_empty() {
        blocks.push(text_block(&normalizer.text(&cell.stdout)));
    }
    let o = &cell.outputs;
    let image = |ext: &str, bytes: Vec<u8>, title: String, assets: &mut BTreeMap<_, _>| {
        let file = format!("{name}.{ext}");
        assets.insert(file.clone(), bytes);
        format!("![{}]({stem}/{file})", alt_text(&title))
    };
    if let Some(svg) = o.get("image/svg+xml") {
        let title = svg_title(svg).unwrap_or_else(|| "chart".to_owned());
        blocks.push(image("svg", svg.as_bytes().to_vec(), title, assets));
    } else if let Some(png) = o
        .get("image/png")
        .and_then(|b| crate::normalize::decode_base64(b))
    {
        blocks.push(image("png", png, "chart".to_owned(), assets));
    } else if let Some(md) = o.get("text/markdown") {
        blocks.push(normalizer.text(md.trim()));
    } else if let Some(html) = o
        .get("text/html")
        .filter(|h| !h.contains("<svg") && !h.contains(";base64,"))
    {
        // `$` would start math for the KaTeX preprocessor.
        blocks.push(html_block(&normalizer.text(html).replace('$', "&#36;")));
    } else if let Some(text) = o.get("text/plain") {
        if !text.trim().is_empty() {
            blocks.push(text_block(&normalizer.text(text)));
        }
    }
    blocks
}

pub(super) fn text_block(text: &str) -> String {
    let text: String = text
        .trim_end()
        .lines()
        .map(|l| format!("{}\n", l.trim_end()))
        .collect();
    fenced("text", text.trim_matches('\n'))
}

/// Raw HTML as one HTML block: a blank line would end it, so there are none.
pub(super) fn html_block(html: &str) -> String {
    let lines: Vec<&str> = html
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    format!("<div class=\"nb-output\">\n{}\n</div>", lines.join("\n"))
}

/// The first `<text>` of an SVG (the chart's title), unescaped.
pub(super) fn svg_title(svg: &str) -> Option<String> {
    let start = svg.find("<text")?;
    let rest = &svg[start..];
    let body = &rest[rest.find('>')? + 1..];
    let text = body.split('<').next()?.trim();
    (!text.is_empty()).then(|| {
        text.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    })
}

/// Text safe inside `![…]`: no brackets, backslashes or line breaks.
pub(super) fn alt_text(text: &str) -> String {
    text.replace(['[', ']', '\\'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
