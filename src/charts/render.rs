//! Turning a [`LineChart`] into pixels (PNG) or vector graphics (SVG).
//!
//! There is exactly one drawing routine, [`draw`]. It is generic over plotters'
//! `DrawingBackend`, so the SVG and the PNG of a chart come from the same code and can only
//! differ in how each backend rasterises lines and text.

use super::{ChartError, LegendPosition, LineChart, LineStyle, Rgb, SIZE_LIMITS};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::sync::OnceLock;

/// The font family every piece of text uses. We register DejaVu Sans under this name, so
/// plotters' own defaults (which also ask for "sans-serif") find it too.
pub const FONT_FAMILY: &str = "sans-serif";

/// DejaVu Sans, compiled into the binary: PNGs need real glyph outlines, and a CI runner or
/// a fresh container may have no fonts at all.
static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

// Sizes in pixels, tuned for an 800 × 500 image.
const TITLE_SIZE: u32 = 22;
const AXIS_LABEL_SIZE: u32 = 16;
const TICK_SIZE: u32 = 14;
const LEGEND_SIZE: u32 = 14;
const ANNOTATION_SIZE: u32 = 15;
const LEGEND_LINE_LEN: i32 = 24;
const DASH: (i32, i32) = (8, 5); // dash length, gap

type Ctx<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Registers the embedded font with plotters, once per process.
fn ensure_font() -> Result<(), ChartError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, DEJAVU_SANS).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(ChartError::Font)
    }
}

/// plotters' errors are generic over the backend; we keep their message.
fn plot_err<E: std::fmt::Display>(e: E) -> ChartError {
    ChartError::Plot(e.to_string())
}

fn color(c: Rgb) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

/// Draws `chart` onto `root`, which can be any plotters drawing area (SVG, bitmap, ...).
///
/// Layering, bottom to top: shaded areas, reference lines, curves, legend, annotations.
pub fn draw<DB: DrawingBackend>(
    chart: &LineChart,
    root: &DrawingArea<DB, Shift>,
) -> Result<(), ChartError> {
    ensure_font()?;
    validate(chart)?;
    let ((x0, x1), (y0, y1)) = ranges(chart);

    root.fill(&WHITE).map_err(plot_err)?;
    // Row names need room of their own; numbers fit in 64 pixels.
    let category_style = TextStyle::from((FONT_FAMILY, TICK_SIZE).into_font())
        .pos(Pos::new(HPos::Right, VPos::Center));
    let mut y_area = 64;
    for name in &chart.y_categories {
        let (w, _) = root
            .estimate_text_size(name, &category_style)
            .map_err(plot_err)?;
        y_area = y_area.max(w + 24);
    }
    let mut ctx = ChartBuilder::on(root)
        .caption(&chart.title, (FONT_FAMILY, TITLE_SIZE))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(y_area)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(plot_err)?;

    let mut mesh = ctx.configure_mesh();
    mesh.x_desc(chart.x_label.as_str())
        .y_desc(chart.y_label.as_str())
        .axis_desc_style((FONT_FAMILY, AXIS_LABEL_SIZE))
        .label_style((FONT_FAMILY, TICK_SIZE))
        .x_label_formatter(&tick_label)
        .y_label_formatter(&tick_label)
        .bold_line_style(RGBColor(0xe4, 0xe4, 0xe4))
        .light_line_style(TRANSPARENT);
    if !chart.y_categories.is_empty() {
        // The names are drawn below, one per row, instead of numeric ticks.
        mesh.y_labels(0);
    }
    mesh.draw().map_err(plot_err)?;
    for (row, name) in chart.y_categories.iter().enumerate() {
        let (x, y) = ctx.backend_coord(&(x0, row as f64));
        root.draw(&Text::new(
            name.as_str(),
            (x - 10, y),
            category_style.clone(),
        ))
        .map_err(plot_err)?;
    }

    for area in &chart.shaded {
        let fill = color(area.color).mix(area.opacity).filled();
        ctx.draw_series(AreaSeries::new(
            area.points.iter().copied(),
            area.baseline,
            fill,
        ))
        .map_err(plot_err)?;
    }
    for v in &chart.vlines {
        let points = [(v.at, y0), (v.at, y1)];
        draw_line(&mut ctx, &points, v.color, 1, v.style, "")?;
    }
    for h in &chart.hlines {
        let points = [(x0, h.at), (x1, h.at)];
        draw_line(&mut ctx, &points, h.color, 1, h.style, "")?;
    }
    for s in &chart.series {
        draw_line(&mut ctx, &s.points, s.color, s.width, s.style, &s.name)?;
        if let Some(radius) = s.dot {
            let fill = color(s.color).filled();
            let dots = s.points.iter().map(|&p| Circle::new(p, radius, fill));
            let anno = ctx.draw_series(dots).map_err(plot_err)?;
            // A line's legend entry is its stroke; a scatter's is a dot.
            if s.style == LineStyle::Hidden && !s.name.is_empty() {
                anno.label(s.name.as_str())
                    .legend(move |(x, y)| Circle::new((x + LEGEND_LINE_LEN / 2, y), radius, fill));
            }
        }
    }
    // Areas were drawn first so they sit under the curves, but their legend entries should
    // come after the curves'. An empty series carries a legend entry and draws nothing.
    for area in chart.shaded.iter().filter(|a| !a.name.is_empty()) {
        let fill = color(area.color).mix(area.opacity).filled();
        ctx.draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())
            .map_err(plot_err)?
            .label(area.name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + LEGEND_LINE_LEN, y + 6)], fill));
    }

    let has_legend = chart.series.iter().any(|s| !s.name.is_empty())
        || chart.shaded.iter().any(|a| !a.name.is_empty());
    if has_legend {
        ctx.configure_series_labels()
            .position(legend_position(chart.legend))
            .margin(12)
            .legend_area_size(LEGEND_LINE_LEN + 6)
            .label_font((FONT_FAMILY, LEGEND_SIZE))
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(0xbb, 0xbb, 0xbb))
            .draw()
            .map_err(plot_err)?;
    }

    for a in &chart.annotations {
        let c = color(a.color);
        let style = TextStyle::from((FONT_FAMILY, ANNOTATION_SIZE).into_font())
            .color(&c)
            .pos(Pos::new(HPos::Center, VPos::Center));
        let center = ctx.backend_coord(&a.at);
        let (w, h) = root.estimate_text_size(&a.text, &style).map_err(plot_err)?;
        // Half-size of the text box plus some padding. A white box keeps the text readable
        // where it crosses grid or reference lines.
        let half = (w as i32 / 2 + 8, h as i32 / 2 + 6);
        let corners = [
            (center.0 - half.0, center.1 - half.1),
            (center.0 + half.0, center.1 + half.1),
        ];
        root.draw(&Rectangle::new(corners, WHITE.mix(0.85).filled()))
            .map_err(plot_err)?;
        root.draw(&Text::new(a.text.as_str(), center, style))
            .map_err(plot_err)?;
        if let Some(target) = a.arrow_to {
            draw_arrow(root, center, half, ctx.backend_coord(&target), c)?;
        }
    }
    Ok(())
}

/// Draws one polyline, solid or dashed, with a legend entry unless `name` is empty.
fn draw_line<DB: DrawingBackend>(
    ctx: &mut Ctx<'_, DB>,
    points: &[(f64, f64)],
    c: Rgb,
    width: u32,
    style: LineStyle,
    name: &str,
) -> Result<(), ChartError> {
    let stroke = color(c).stroke_width(width);
    match style {
        LineStyle::Solid => {
            let anno = ctx
                .draw_series(LineSeries::new(points.iter().copied(), stroke))
                .map_err(plot_err)?;
            if !name.is_empty() {
                anno.label(name).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + LEGEND_LINE_LEN, y)], stroke)
                });
            }
        }
        LineStyle::Dashed => {
            let anno = ctx
                .draw_series(DashedLineSeries::new(
                    points.iter().copied(),
                    DASH.0,
                    DASH.1,
                    stroke,
                ))
                .map_err(plot_err)?;
            if !name.is_empty() {
                anno.label(name).legend(move |(x, y)| {
                    let ends = vec![(x, y), (x + LEGEND_LINE_LEN, y)];
                    DashedPathElement::new(ends, 6, 3, stroke)
                });
            }
        }
        LineStyle::Hidden => {}
    }
    Ok(())
}

/// An arrow from the edge of a text box (centre `from`, half-size `half`) to `to`, all in
/// pixels. The shaft leaves the box where the straight line to the target crosses its
/// border; the tip stops 2 px short of the target so it does not hide the curve.
fn draw_arrow<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    from: (i32, i32),
    half: (i32, i32),
    to: (i32, i32),
    c: RGBColor,
) -> Result<(), ChartError> {
    const HEAD_LEN: f64 = 11.0;
    const HEAD_HALF_WIDTH: f64 = 4.5;
    const TIP_GAP: f64 = 2.0;

    let (fx, fy) = (f64::from(from.0), f64::from(from.1));
    let (dx, dy) = (f64::from(to.0) - fx, f64::from(to.1) - fy);
    let len = dx.hypot(dy);
    // Fraction of the way to the target at which the line leaves the text box.
    let exit = f64::min(
        f64::from(half.0) / dx.abs().max(1e-9),
        f64::from(half.1) / dy.abs().max(1e-9),
    );
    let shaft = len * (1.0 - exit) - TIP_GAP;
    if shaft < HEAD_LEN {
        return Ok(()); // the target is (almost) under the text: nothing to point at
    }
    let (ux, uy) = (dx / len, dy / len);
    let px = |x: f64, y: f64| (x.round() as i32, y.round() as i32);
    let start = px(fx + dx * exit, fy + dy * exit);
    let tip = (
        f64::from(to.0) - ux * TIP_GAP,
        f64::from(to.1) - uy * TIP_GAP,
    );
    let base = (tip.0 - ux * HEAD_LEN, tip.1 - uy * HEAD_LEN);
    let left = px(base.0 - uy * HEAD_HALF_WIDTH, base.1 + ux * HEAD_HALF_WIDTH);
    let right = px(base.0 + uy * HEAD_HALF_WIDTH, base.1 - ux * HEAD_HALF_WIDTH);

    root.draw(&PathElement::new(
        vec![start, px(base.0, base.1)],
        c.stroke_width(2),
    ))
    .map_err(plot_err)?;
    root.draw(&Polygon::new(
        vec![px(tip.0, tip.1), left, right],
        c.filled(),
    ))
    .map_err(plot_err)
}

fn legend_position(p: LegendPosition) -> SeriesLabelPosition {
    match p {
        LegendPosition::UpperLeft => SeriesLabelPosition::UpperLeft,
        LegendPosition::UpperMiddle => SeriesLabelPosition::UpperMiddle,
        LegendPosition::UpperRight => SeriesLabelPosition::UpperRight,
        LegendPosition::LowerLeft => SeriesLabelPosition::LowerLeft,
        LegendPosition::LowerRight => SeriesLabelPosition::LowerRight,
    }
}

/// Tick labels without float noise: `2`, `-0.5`, `0.25` rather than `2.0000000001`.
fn tick_label(v: &f64) -> String {
    let s = format!("{:.3}", v);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// Rejects what plotters cannot draw sensibly: non-finite numbers, empty ranges, odd sizes.
fn validate(chart: &LineChart) -> Result<(), ChartError> {
    let bad = |msg: String| Err(ChartError::InvalidChart(msg));
    let (lo, hi) = SIZE_LIMITS;
    if !(lo..=hi).contains(&chart.width) || !(lo..=hi).contains(&chart.height) {
        return bad(format!(
            "size {}×{} is outside {lo}..={hi} pixels per side",
            chart.width, chart.height
        ));
    }
    let finite = |p: &(f64, f64)| p.0.is_finite() && p.1.is_finite();
    for s in &chart.series {
        if let Some(i) = s.points.iter().position(|p| !finite(p)) {
            return bad(format!(
                "series {:?} has a non-finite point at index {i}: {:?}",
                s.name, s.points[i]
            ));
        }
    }
    for a in &chart.shaded {
        if let Some(i) = a.points.iter().position(|p| !finite(p)) {
            return bad(format!(
                "area {:?} has a non-finite point at index {i}: {:?}",
                a.name, a.points[i]
            ));
        }
        if !a.baseline.is_finite() || !(0.0..=1.0).contains(&a.opacity) {
            return bad(format!(
                "area {:?} needs a finite baseline and an opacity in [0, 1]",
                a.name
            ));
        }
    }
    for a in &chart.annotations {
        if !finite(&a.at) || a.arrow_to.is_some_and(|t| !finite(&t)) {
            return bad(format!("annotation {:?} has a non-finite position", a.text));
        }
    }
    if chart
        .vlines
        .iter()
        .chain(&chart.hlines)
        .any(|l| !l.at.is_finite())
    {
        return bad("a reference line is at a non-finite position".to_string());
    }
    for (axis, range) in [("x", chart.x_range), ("y", chart.y_range)] {
        if let Some((lo, hi)) = range {
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                return bad(format!(
                    "{axis} range ({lo}, {hi}) must be finite with lo < hi"
                ));
            }
        }
    }
    Ok(())
}

/// Running min/max of some numbers.
#[derive(Default)]
struct Bounds(Option<(f64, f64)>);

impl Bounds {
    fn add(&mut self, v: f64) {
        self.0 = Some(match self.0 {
            None => (v, v),
            Some((lo, hi)) => (lo.min(v), hi.max(v)),
        });
    }

    /// The range, widened by `pad` × its span on each side; never empty.
    fn fit(&self, pad: f64) -> (f64, f64) {
        match self.0 {
            None => (0.0, 1.0),
            Some((lo, hi)) if lo == hi => {
                let half = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
                (lo - half, hi + half)
            }
            Some((lo, hi)) => (lo - pad * (hi - lo), hi + pad * (hi - lo)),
        }
    }
}

/// The axis ranges: the chart's own if set, otherwise everything drawn fits — curves, areas
/// (including their baselines), reference lines and annotation points. x is fitted tightly
/// (a function plot over a chosen interval), y gets 5% room so curves do not touch the frame.
fn ranges(chart: &LineChart) -> ((f64, f64), (f64, f64)) {
    let (mut xs, mut ys) = (Bounds::default(), Bounds::default());
    let mut add = |(x, y): (f64, f64)| {
        xs.add(x);
        ys.add(y);
    };
    chart
        .series
        .iter()
        .flat_map(|s| &s.points)
        .for_each(|&p| add(p));
    chart
        .shaded
        .iter()
        .flat_map(|a| &a.points)
        .for_each(|&p| add(p));
    for a in &chart.annotations {
        add(a.at);
        if let Some(t) = a.arrow_to {
            add(t);
        }
    }
    chart.shaded.iter().for_each(|a| ys.add(a.baseline));
    chart.hlines.iter().for_each(|l| ys.add(l.at));
    chart.vlines.iter().for_each(|l| xs.add(l.at));
    // Rows of categories get half a row of room at the top and bottom.
    let rows = chart.y_categories.len() as f64;
    let fit_y = || {
        if rows > 0.0 {
            (-0.6, rows - 0.4)
        } else {
            ys.fit(0.05)
        }
    };
    (
        chart.x_range.unwrap_or_else(|| xs.fit(0.0)),
        chart.y_range.unwrap_or_else(fit_y),
    )
}

/// SVG: plotters writes the document into a `String`.
pub(super) fn to_svg(chart: &LineChart) -> Result<String, ChartError> {
    validate(chart)?;
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (chart.width, chart.height)).into_drawing_area();
        draw(chart, &root)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// PNG: plotters rasterises into an RGB buffer in memory, which the `png` crate encodes.
/// (plotters can only write PNGs to a file path itself.) No timestamps or other metadata go
/// into the file, so the same chart always gives the same bytes.
pub(super) fn to_png(chart: &LineChart) -> Result<Vec<u8>, ChartError> {
    validate(chart)?; // before allocating width × height × 3 bytes
    let (w, h) = (chart.width, chart.height);
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        draw(chart, &root)?;
        root.present().map_err(plot_err)?;
    }
    let png_err = |e: png::EncodingError| ChartError::Png(e.to_string());
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(png_err)?;
    writer.write_image_data(&rgb).map_err(png_err)?;
    writer.finish().map_err(png_err)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_have_no_float_noise() {
        assert_eq!(tick_label(&2.0), "2");
        assert_eq!(tick_label(&-0.5), "-0.5");
        assert_eq!(tick_label(&0.25), "0.25");
        assert_eq!(tick_label(&-0.0000001), "0");
        assert_eq!(tick_label(&1.0000000001), "1");
    }

    #[test]
    fn bounds_never_give_an_empty_range() {
        assert_eq!(Bounds::default().fit(0.05), (0.0, 1.0));
        let mut b = Bounds::default();
        b.add(0.0);
        assert_eq!(b.fit(0.05), (-1.0, 1.0));
        b.add(10.0);
        assert_eq!(b.fit(0.1), (-1.0, 11.0));
    }
}
