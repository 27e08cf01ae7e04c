//! Jupyter notebooks as JSON: load, validate, look at cells, write back the way Jupyter does.
//!
//! A notebook is kept as a [`serde_json::Value`] with its keys in file order, so everything this
//! crate does not touch (metadata, markdown, ids, unknown fields) comes back unchanged.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::Error;

/// A cell's position, as errors and reports name it: `cells[3] (id lab1-07)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellRef {
    /// The cell's 0-based index in the notebook's `cells` array.
    pub index: usize,
    /// The cell's `id` (nbformat 4.5), if it has one.
    pub id: Option<String>,
}

impl fmt::Display for CellRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.id {
            Some(id) => write!(f, "cells[{}] (id {id})", self.index),
            None => write!(f, "cells[{}] (no id)", self.index),
        }
    }
}

/// A parsed, validated notebook.
#[derive(Debug, Clone, PartialEq)]
pub struct Notebook {
    json: Value,
}

impl Notebook {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Notebook, Error> {
        let text = fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Notebook::parse(&text, path)
    }

    /// Parses and validates notebook JSON; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Notebook, Error> {
        let json: Value = serde_json::from_str(text).map_err(|e| Error::Json {
            path: path.to_owned(),
            line: e.line(),
            column: e.column(),
            message: json_message(&e),
        })?;
        let not_a_notebook = |reason: String| Error::NotANotebook {
            path: path.to_owned(),
            reason,
        };
        let top = json
            .as_object()
            .ok_or_else(|| not_a_notebook("the top level is not a JSON object".into()))?;
        match top.get("nbformat").and_then(Value::as_u64) {
            Some(4) => {}
            Some(v) => return Err(not_a_notebook(format!("nbformat {v}, expected 4"))),
            None => return Err(not_a_notebook("no `nbformat` number".into())),
        }
        let cells = top
            .get("cells")
            .and_then(Value::as_array)
            .ok_or_else(|| not_a_notebook("no `cells` array".into()))?;
        for (index, cell) in cells.iter().enumerate() {
            let at = |what: &str| {
                let cell = CellRef {
                    index,
                    id: cell_id(cell),
                };
                not_a_notebook(format!("{cell}: {what}"))
            };
            let obj = cell.as_object().ok_or_else(|| at("not a JSON object"))?;
            let kind = obj
                .get("cell_type")
                .and_then(Value::as_str)
                .ok_or_else(|| at("no `cell_type` string"))?;
            match obj.get("source") {
                Some(Value::String(_)) => {}
                Some(Value::Array(lines)) if lines.iter().all(Value::is_string) => {}
                _ => return Err(at("`source` is neither a string nor a list of strings")),
            }
            if kind == "code" && !obj.get("outputs").is_some_and(Value::is_array) {
                return Err(at("a code cell without an `outputs` array"));
            }
        }
        Ok(Notebook { json })
    }

    /// The notebook as JSON.
    pub fn json(&self) -> &Value {
        &self.json
    }

    fn cells_array(&self) -> &Vec<Value> {
        // Checked by `parse`.
        match &self.json["cells"] {
            Value::Array(cells) => cells,
            _ => unreachable!("validated notebook has a cells array"),
        }
    }

    fn cells_array_mut(&mut self) -> &mut Vec<Value> {
        match &mut self.json["cells"] {
            Value::Array(cells) => cells,
            _ => unreachable!("validated notebook has a cells array"),
        }
    }

    /// Every cell, in order.
    pub fn cells(&self) -> Vec<Cell<'_>> {
        self.cells_array()
            .iter()
            .enumerate()
            .map(|(index, json)| Cell {
                at: CellRef {
                    index,
                    id: cell_id(json),
                },
                json,
            })
            .collect()
    }

    /// The code cells, in order.
    pub fn code_cells(&self) -> Vec<Cell<'_>> {
        self.cells().into_iter().filter(Cell::is_code).collect()
    }

    /// Replaces the source of cell `index`, keeping its form (one string or a list of lines).
    pub fn set_source(&mut self, index: usize, source: &str) {
        let cell = &mut self.cells_array_mut()[index];
        let new = match cell.get("source") {
            Some(Value::String(_)) => Value::String(source.to_owned()),
            _ => lines_value(source),
        };
        cell["source"] = new;
    }

    /// Clears every code cell's outputs and execution count (how source notebooks are stored).
    pub fn clear_outputs(&mut self) {
        for cell in self.cells_array_mut() {
            if cell["cell_type"] == "code" {
                cell["outputs"] = Value::Array(Vec::new());
                cell["execution_count"] = Value::Null;
            }
        }
    }

    /// Sets the outputs and execution count of cell `index` (a code cell).
    pub fn set_outputs(&mut self, index: usize, outputs: Vec<Value>, execution_count: Option<u64>) {
        let cell = &mut self.cells_array_mut()[index];
        cell["outputs"] = Value::Array(outputs);
        cell["execution_count"] = execution_count.map_or(Value::Null, Value::from);
    }

    /// The notebook as Jupyter writes it: pretty JSON, 1-space indent, non-ASCII kept, trailing
    /// newline.
    pub fn to_json_string(&self) -> String {
        let mut out = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
        self.json
            .serialize(&mut ser)
            .expect("serializing a JSON value into memory cannot fail");
        let mut text = String::from_utf8(out).expect("serde_json writes UTF-8");
        text.push('\n');
        text
    }
}

/// One cell of a [`Notebook`].
#[derive(Debug, Clone)]
pub struct Cell<'a> {
    at: CellRef,
    json: &'a Value,
}

impl<'a> Cell<'a> {
    /// Where the cell is.
    pub fn at(&self) -> &CellRef {
        &self.at
    }

    /// `code`, `markdown` or `raw`.
    pub fn kind(&self) -> &'a str {
        self.json["cell_type"].as_str().unwrap_or("")
    }

    /// Whether this is a code cell.
    pub fn is_code(&self) -> bool {
        self.kind() == "code"
    }

    /// The cell's source as one string.
    pub fn source(&self) -> String {
        match &self.json["source"] {
            Value::String(s) => s.clone(),
            Value::Array(lines) => lines.iter().filter_map(Value::as_str).collect(),
            _ => String::new(),
        }
    }

    /// The cell's JSON.
    pub fn json(&self) -> &'a Value {
        self.json
    }
}

fn cell_id(cell: &Value) -> Option<String> {
    cell.get("id").and_then(Value::as_str).map(str::to_owned)
}

/// `text` as Jupyter stores multi-line strings: a list of lines, each but the last keeping its
/// `\n`.
pub fn lines_value(text: &str) -> Value {
    Value::Array(
        text.split_inclusive('\n')
            .map(|l| Value::String(l.to_owned()))
            .collect(),
    )
}

/// An object from key/value pairs, keys in the given order.
pub fn object<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    let mut map = Map::new();
    for (k, v) in pairs {
        map.insert(k.to_owned(), v);
    }
    Value::Object(map)
}

/// serde_json's message without its trailing " at line L column C" (errors carry those apart).
fn json_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// Writes `contents` to `path` atomically: a temporary file in the same folder, then a rename.
/// A reader never sees a half-written file.
pub fn write_atomic(path: &Path, contents: &str) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io)
}
