//! Charts: describe a chart as plain data, then render it to SVG or PNG.
//!
//! A [`LineChart`] is just a struct of vectors — lines, shaded areas, reference lines and
//! annotations — with no drawing code in it. That makes a chart easy to build in a notebook,
//! easy to inspect (it is `Serialize`, so tests snapshot its numbers, not its pixels) and
//! easy to reuse: lab 2's charts ([`crate::prospect::value_function_chart`]) and lab 3's
//! training curves ([`crate::pipeline::loss_curves`]) are built this way, each beside the
//! numbers it draws; this module knows nothing of either.
//!
//! Drawing happens in one place, [`draw`], which is generic over plotters'
//! `DrawingBackend`: [`LineChart::to_svg`] and [`LineChart::to_png`] run the very same code
//! on two different backends. Text is set in the DejaVu Sans font shipped in
//! `assets/fonts`, so PNGs render identically on a machine with no fonts installed.
//!
//! ```
//! use kto_lab::charts::{LineChart, Rgb, Series};
//!
//! let chart = LineChart::new("Training loss", "step", "loss")
//!     .with_series(Series::line("loss", vec![(0.0, 0.69), (1.0, 0.52), (2.0, 0.41)], Rgb::BLUE));
//! let svg = chart.to_svg().unwrap();
//! assert!(svg.contains("Training loss"));
//! ```

mod render;

pub use render::{draw, FONT_FAMILY};

use serde::{Serialize, Serializer};
use std::path::PathBuf;
use thiserror::Error;

/// Everything that can go wrong while building, rendering or saving a chart.
#[derive(Debug, Error)]
pub enum ChartError {
    /// Reading or writing a file failed; `path` says which one.
    #[error("could not write {}: {source}", path.display())]
    Io {
        /// The file or directory we were writing.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// plotters reported an error while drawing (kept as text: its error types are generic
    /// over the backend).
    #[error("drawing failed: {0}")]
    Plot(String),
    /// The embedded DejaVu Sans font could not be parsed (should never happen).
    #[error("the embedded DejaVu Sans font could not be loaded")]
    Font,
    /// Encoding the rendered pixels as PNG failed.
    #[error("PNG encoding failed: {0}")]
    Png(String),
    /// The chart description itself is unusable (a NaN point, an empty axis range, ...).
    #[error("invalid chart: {0}")]
    InvalidChart(String),
}

/// An opaque colour, 8 bits per channel. Serialises as `"#rrggbb"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// matplotlib's default blue.
    pub const BLUE: Rgb = Rgb(0x1f, 0x77, 0xb4);
    /// matplotlib's default green: thumbs up, gains.
    pub const GREEN: Rgb = Rgb(0x2c, 0xa0, 0x2c);
    /// matplotlib's default red: thumbs down, losses.
    pub const RED: Rgb = Rgb(0xd6, 0x27, 0x28);
    /// matplotlib's default orange.
    pub const ORANGE: Rgb = Rgb(0xff, 0x7f, 0x0e);
    /// Near-black, for reference lines and text.
    pub const DARK: Rgb = Rgb(0x33, 0x33, 0x33);
    /// Mid gray, for axes through zero.
    pub const GRAY: Rgb = Rgb(0x99, 0x99, 0x99);
}

impl Serialize for Rgb {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2))
    }
}

/// How a line is stroked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LineStyle {
    /// A continuous line.
    Solid,
    /// A dashed line: for references, baselines and "the other version" of a curve.
    Dashed,
    /// No line at all: only the points' dots (see [`Series::dots`]).
    Hidden,
}

/// One named curve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// Legend text; an empty name keeps the series out of the legend.
    pub name: String,
    /// The `(x, y)` points, joined in order.
    pub points: Vec<(f64, f64)>,
    /// Line colour.
    pub color: Rgb,
    /// Solid or dashed.
    pub style: LineStyle,
    /// Line width in pixels.
    pub width: u32,
    /// Radius in pixels of a filled dot drawn at every point (`None`: no dots).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dot: Option<u32>,
}

impl Series {
    /// A solid, 2-pixel line.
    pub fn line(name: impl Into<String>, points: Vec<(f64, f64)>, color: Rgb) -> Self {
        Self {
            name: name.into(),
            points,
            color,
            style: LineStyle::Solid,
            width: 2,
            dot: None,
        }
    }

    /// Dots of radius `radius` pixels at the points, with no line between them (a scatter).
    pub fn dots(name: impl Into<String>, points: Vec<(f64, f64)>, color: Rgb, radius: u32) -> Self {
        Self {
            style: LineStyle::Hidden,
            dot: Some(radius),
            ..Self::line(name, points, color)
        }
    }

    /// The same series with a dot of radius `radius` pixels at every point.
    pub fn with_dots(mut self, radius: u32) -> Self {
        self.dot = Some(radius);
        self
    }

    /// The same line, dashed.
    pub fn dashed(mut self) -> Self {
        self.style = LineStyle::Dashed;
        self
    }

    /// The same line with another width in pixels.
    pub fn width(mut self, width: u32) -> Self {
        self.width = width;
        self
    }
}

/// A translucent fill between a curve and the horizontal line `y = baseline`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Area {
    /// Legend text; an empty name keeps the area out of the legend.
    pub name: String,
    /// The curve bounding the area, as `(x, y)` points in order of x.
    pub points: Vec<(f64, f64)>,
    /// The other edge of the area.
    pub baseline: f64,
    /// Fill colour (drawn with `opacity`).
    pub color: Rgb,
    /// 0 = invisible, 1 = opaque.
    pub opacity: f64,
}

impl Area {
    /// A fill between `points` and `y = 0`, 20% opaque (matplotlib's `fill_between(..., alpha=0.2)`).
    pub fn to_zero(name: impl Into<String>, points: Vec<(f64, f64)>, color: Rgb) -> Self {
        Self {
            name: name.into(),
            points,
            baseline: 0.0,
            color,
            opacity: 0.2,
        }
    }
}

/// A text label in data coordinates, optionally with an arrow to the point it talks about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Annotation {
    /// The text (one line).
    pub text: String,
    /// Where the *centre* of the text goes, in data coordinates.
    pub at: (f64, f64),
    /// If set, an arrow runs from the text to this point (data coordinates).
    pub arrow_to: Option<(f64, f64)>,
    /// Text and arrow colour.
    pub color: Rgb,
}

/// A horizontal or vertical line across the whole plot, e.g. an axis through 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RefLine {
    /// The x of a vertical line, or the y of a horizontal one.
    pub at: f64,
    /// Line colour.
    pub color: Rgb,
    /// Solid or dashed.
    pub style: LineStyle,
}

/// Where the legend box sits inside the plot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LegendPosition {
    /// Top left corner.
    UpperLeft,
    /// Top, centred.
    UpperMiddle,
    /// Top right corner.
    UpperRight,
    /// Bottom left corner.
    LowerLeft,
    /// Bottom right corner.
    LowerRight,
}

/// A 2-D line chart described as data. Build it, look at it, then render it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineChart {
    /// Caption above the plot.
    pub title: String,
    /// Text under the x axis.
    pub x_label: String,
    /// Text beside the y axis.
    pub y_label: String,
    /// Fixed x range; `None` fits the data exactly.
    pub x_range: Option<(f64, f64)>,
    /// Fixed y range; `None` fits the data with 5% room above and below.
    pub y_range: Option<(f64, f64)>,
    /// Curves, drawn in order (later ones on top).
    pub series: Vec<Series>,
    /// Shaded areas, drawn first, under everything else.
    pub shaded: Vec<Area>,
    /// Text labels with optional arrows, drawn last, on top.
    pub annotations: Vec<Annotation>,
    /// Vertical reference lines.
    pub vlines: Vec<RefLine>,
    /// Horizontal reference lines.
    pub hlines: Vec<RefLine>,
    /// Where to put the legend: pick an empty corner so it hides no curve.
    pub legend: LegendPosition,
    /// Names for the rows y = 0, 1, 2, …: when set, the y axis shows them instead of numbers
    /// (a dot plot or dumbbell chart of categories). Empty: a numeric y axis.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub y_categories: Vec<String>,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
}

/// The default image size, width × height in pixels.
pub const CHART_SIZE: (u32, u32) = (800, 500);

/// Smallest and largest image side we render (a bitmap is width × height × 3 bytes).
pub const SIZE_LIMITS: (u32, u32) = (100, 4096);

impl LineChart {
    /// An empty chart of [`CHART_SIZE`] with the legend in the upper left.
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        Self {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            x_range: None,
            y_range: None,
            series: Vec::new(),
            shaded: Vec::new(),
            annotations: Vec::new(),
            vlines: Vec::new(),
            hlines: Vec::new(),
            legend: LegendPosition::UpperLeft,
            y_categories: Vec::new(),
            width: CHART_SIZE.0,
            height: CHART_SIZE.1,
        }
    }

    /// Adds a curve.
    pub fn with_series(mut self, series: Series) -> Self {
        self.series.push(series);
        self
    }

    /// Adds a shaded area.
    pub fn with_area(mut self, area: Area) -> Self {
        self.shaded.push(area);
        self
    }

    /// Adds a text label at `at`, with an arrow to `arrow_to` if given.
    pub fn with_annotation(
        mut self,
        text: impl Into<String>,
        at: (f64, f64),
        arrow_to: Option<(f64, f64)>,
        color: Rgb,
    ) -> Self {
        self.annotations.push(Annotation {
            text: text.into(),
            at,
            arrow_to,
            color,
        });
        self
    }

    /// Adds a vertical line at `x`.
    pub fn with_vline(mut self, x: f64, color: Rgb, style: LineStyle) -> Self {
        self.vlines.push(RefLine {
            at: x,
            color,
            style,
        });
        self
    }

    /// Adds a horizontal line at `y`.
    pub fn with_hline(mut self, y: f64, color: Rgb, style: LineStyle) -> Self {
        self.hlines.push(RefLine {
            at: y,
            color,
            style,
        });
        self
    }

    /// Moves the legend.
    pub fn with_legend(mut self, position: LegendPosition) -> Self {
        self.legend = position;
        self
    }

    /// Names the rows y = 0, 1, 2, … (the first name is the bottom row) and shows the names
    /// on the y axis instead of numbers. The y range fits the rows unless set.
    pub fn with_y_categories(mut self, names: Vec<String>) -> Self {
        self.y_categories = names;
        self
    }

    /// Fixes the axis ranges instead of fitting them to the data.
    pub fn with_ranges(mut self, x: Option<(f64, f64)>, y: Option<(f64, f64)>) -> Self {
        self.x_range = x;
        self.y_range = y;
        self
    }

    /// Renders the chart as an SVG document.
    pub fn to_svg(&self) -> Result<String, ChartError> {
        render::to_svg(self)
    }

    /// Renders the chart as PNG bytes (RGB, 8 bits per channel).
    pub fn to_png(&self) -> Result<Vec<u8>, ChartError> {
        render::to_png(self)
    }

    /// Renders to SVG and writes it to `path` (the directory must exist).
    pub fn save_svg(&self, path: impl AsRef<std::path::Path>) -> Result<(), ChartError> {
        write_file(path.as_ref(), self.to_svg()?.as_bytes())
    }

    /// Renders to PNG and writes it to `path` (the directory must exist).
    pub fn save_png(&self, path: impl AsRef<std::path::Path>) -> Result<(), ChartError> {
        write_file(path.as_ref(), &self.to_png()?)
    }

    /// What [`LineChart::evcxr_display`] prints: the SVG wrapped in evcxr's
    /// `EVCXR_BEGIN_CONTENT` / `EVCXR_END_CONTENT` markers.
    pub fn evcxr_content(&self) -> Result<String, ChartError> {
        let svg = self.to_svg()?;
        Ok(format!(
            "EVCXR_BEGIN_CONTENT image/svg+xml\n{}\nEVCXR_END_CONTENT",
            svg.trim_end()
        ))
    }

    /// Shows the chart inline in an evcxr (Jupyter) notebook.
    ///
    /// evcxr calls a value's `evcxr_display` method when a cell ends with that value and
    /// turns whatever it prints between the markers into rich output. On a rendering error
    /// this prints a one-line message instead of panicking, so a notebook cell never dies.
    pub fn evcxr_display(&self) {
        match self.evcxr_content() {
            Ok(content) => println!("{content}"),
            Err(e) => println!("(chart could not be rendered: {e})"),
        }
    }
}

fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<(), ChartError> {
    std::fs::write(path, bytes).map_err(|source| ChartError::Io {
        path: path.to_path_buf(),
        source,
    })
}
