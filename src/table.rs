//! Plain-text tables — metrics as the CLI and the tour print them, reports as Markdown.

use serde::Serialize;
use std::fmt::Write as _;

/// Formats a number for people: 4 significant decimals, `—` for a missing value.
fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "—".to_string(),
        serde_json::Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => u.to_string(),
            (_, Some(i), _) => i.to_string(),
            (_, _, Some(f)) => format!("{f:.4}"),
            _ => n.to_string(),
        },
        serde_json::Value::Array(a) => {
            let items: Vec<String> = a.iter().map(cell).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string().trim_matches('"').to_string(),
    }
}

/// A Markdown table: the header row, the `|---|` row, then one line per row of cells.
pub fn markdown(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let line = |cells: &[&str]| format!("| {} |\n", cells.join(" | "));
    let mut s = line(header);
    s += &line(&vec!["---"; header.len()]).replace(' ', "");
    for row in rows {
        s += &line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    s
}

/// One `name  value` line per field of a serializable struct (nested objects are flattened with
/// `.`), names aligned. Floats get 4 decimals so the text is stable across machines.
pub fn metrics_table<T: Serialize>(metrics: &T) -> String {
    let mut rows = Vec::new();
    flatten(
        "",
        &serde_json::to_value(metrics).unwrap_or_default(),
        &mut rows,
    );
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (k, v) in rows {
        let _ = writeln!(out, "  {k:<width$}  {v}");
    }
    out
}

fn flatten(prefix: &str, v: &serde_json::Value, rows: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, rows);
            }
        }
        other => rows.push((prefix.to_string(), cell(other))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn markdown_tables_have_a_header_a_rule_and_a_line_per_row() {
        let rows = vec![vec!["KTO".to_string(), "87.5%".to_string()]];
        assert_eq!(
            super::markdown(&["method", "rate"], rows),
            "| method | rate |\n|---|---|\n| KTO | 87.5% |\n"
        );
    }

    use super::*;

    #[test]
    fn table_aligns_rounds_and_marks_missing_values() {
        let v = serde_json::json!({"loss": 0.123456, "rewards/chosen": null, "count": 3,
                                   "grad": [0.5, -0.25], "nested": {"x": -1.0}});
        assert_eq!(
            metrics_table(&v),
            "  loss            0.1235\n  rewards/chosen  —\n  count           3\n  \
             grad            [0.5000, -0.2500]\n  nested.x        -1.0000\n"
        );
    }
}
