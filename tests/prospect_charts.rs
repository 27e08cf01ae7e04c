//! Lab 2 end to end: prospect-theory curves → chart descriptions → SVG / PNG files.

use kto_lab::charts::{ChartError, LineChart, Rgb, Series};
use kto_lab::prospect::{
    kto_loss_chart, value, value_function_chart, write_lab2_charts, ProspectError, ProspectParams,
    DEFAULT_KTO_BETA,
};
use serde_json::{json, Value};

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

fn value_chart() -> LineChart {
    value_function_chart(&ProspectParams::default()).expect("default params are valid")
}

fn kto_chart() -> LineChart {
    kto_loss_chart(DEFAULT_KTO_BETA, 1.0, 1.0).expect("default params are valid")
}

/// Width and height from the IHDR chunk, which always comes first, right after the signature.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.len() > 24, "PNG too short");
    assert_eq!(&png[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&png[16..20]), be(&png[20..24]))
}

/// Cheap well-formedness check: one root `<svg>` element and balanced `<text>` tags.
fn assert_svg_looks_valid(svg: &str) {
    assert!(svg.starts_with("<svg"), "starts with {:?}", &svg[..20]);
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<svg").count(), 1);
    assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    assert!(!svg.contains("NaN") && !svg.contains("inf"));
}

#[test]
fn value_function_svg_has_title_legend_and_annotation() {
    let svg = value_chart().to_svg().unwrap();
    assert_svg_looks_valid(&svg);
    for text in [
        "Prospect theory: losses loom larger",
        "Prospect theory v(x)",
        "Linear (rational): v(x) = x",
        "Gains",
        "Losses",
        "Loss aversion: λ = 2.25",
        "perceived value v(x)",
    ] {
        assert!(svg.contains(text), "SVG lacks {text:?}");
    }
}

#[test]
fn kto_loss_svg_has_title_and_all_four_curves_in_the_legend() {
    let svg = kto_chart().to_svg().unwrap();
    assert_svg_looks_valid(&svg);
    assert!(svg.contains("(β = 0.1)"));
    assert_eq!(svg.matches("thumbs up:").count(), 2);
    assert_eq!(svg.matches("thumbs down:").count(), 2);
}

#[test]
fn png_has_signature_and_requested_size() {
    for chart in [value_chart(), kto_chart()] {
        let png = chart.to_png().unwrap();
        assert_eq!(png[..8], PNG_SIGNATURE);
        assert_eq!(png_size(&png), (800, 500));
    }
    let small = LineChart {
        width: 320,
        height: 200,
        ..value_chart()
    };
    assert_eq!(png_size(&small.to_png().unwrap()), (320, 200));
}

#[test]
fn rendering_is_deterministic() {
    for make in [value_chart, kto_chart] {
        // Two independently built charts, rendered twice each.
        let (a, b) = (make(), make());
        assert_eq!(a, b);
        assert_eq!(a.to_svg().unwrap(), b.to_svg().unwrap());
        assert_eq!(a.to_svg().unwrap(), a.to_svg().unwrap());
        assert_eq!(a.to_png().unwrap(), b.to_png().unwrap());
    }
}

#[test]
fn write_lab2_charts_writes_four_non_empty_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested").join("lab2");
    let written = write_lab2_charts(&out).unwrap();
    let names: Vec<_> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "value_function.svg",
            "value_function.png",
            "kto_loss.svg",
            "kto_loss.png"
        ]
    );
    for path in &written {
        let bytes = std::fs::read(path).unwrap();
        assert!(
            bytes.len() > 1000,
            "{} is only {} bytes",
            path.display(),
            bytes.len()
        );
    }
    assert_eq!(std::fs::read(&written[1]).unwrap()[..8], PNG_SIGNATURE);
}

#[test]
fn a_lab2_chart_folder_that_cannot_be_made_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    let err = write_lab2_charts(&file.join("lab2")).unwrap_err();
    assert!(matches!(err, ChartError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("a-file"), "{err}");
}

#[test]
fn io_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("chart.png");
    let err = value_chart().save_png(&path).unwrap_err();
    assert!(matches!(err, ChartError::Io { .. }));
    assert!(err.to_string().contains("no-such-dir"), "{err}");
}

#[test]
fn bad_parameters_and_data_are_errors_not_panics() {
    let bad = ProspectParams {
        lambda: -1.0,
        ..ProspectParams::default()
    };
    assert!(matches!(
        value_function_chart(&bad),
        Err(ProspectError::NotPositive { .. })
    ));
    assert!(matches!(
        kto_loss_chart(0.0, 1.0, 1.0),
        Err(ProspectError::NotPositive { .. })
    ));
    assert!(matches!(
        kto_loss_chart(0.1, 1.0, f64::NAN),
        Err(ProspectError::NonFinite { .. })
    ));

    let nan = LineChart::new("t", "x", "y").with_series(Series::line(
        "loss",
        vec![(0.0, 1.0), (1.0, f64::NAN)],
        Rgb::BLUE,
    ));
    let err = nan.to_png().unwrap_err();
    assert!(err.to_string().contains("\"loss\""), "{err}");
    assert!(nan.to_svg().is_err());

    let tiny = LineChart {
        width: 0,
        ..LineChart::new("t", "x", "y")
    };
    assert!(matches!(tiny.to_png(), Err(ChartError::InvalidChart(_))));
    let reversed = LineChart::new("t", "x", "y").with_ranges(Some((1.0, 0.0)), None);
    assert!(matches!(
        reversed.to_svg(),
        Err(ChartError::InvalidChart(_))
    ));
}

#[test]
fn an_empty_chart_still_renders() {
    let empty = LineChart::new("nothing yet", "step", "loss");
    assert_svg_looks_valid(&empty.to_svg().unwrap());
    assert_eq!(empty.to_png().unwrap()[..8], PNG_SIGNATURE);
}

#[test]
fn evcxr_content_wraps_the_svg() {
    let content = kto_chart().evcxr_content().unwrap();
    assert!(content.starts_with("EVCXR_BEGIN_CONTENT image/svg+xml\n<svg"));
    assert!(content.ends_with("</svg>\nEVCXR_END_CONTENT"));
}

#[test]
fn annotation_arrow_points_at_v_of_minus_two() {
    let chart = value_chart();
    let arrow = chart.annotations[0].arrow_to.unwrap();
    assert_eq!(arrow, (-2.0, value(-2.0, &ProspectParams::default())));
}

// ---------------------------------------------------------------------------------------
// Snapshot of the chart *data* (not pixels): names, styles and a few sampled points.
// ---------------------------------------------------------------------------------------

fn round4(v: f64) -> f64 {
    (v * 1e4).round() / 1e4 + 0.0 // + 0.0 turns −0 into 0
}

/// A point as a short string, e.g. `"(-2, -4.1408)"`, so snapshots stay one line per point.
fn pt((x, y): (f64, f64)) -> String {
    format!("({}, {})", round4(x), round4(y))
}

fn sample(points: &[(f64, f64)]) -> Value {
    let n = points.len();
    let picks: Vec<_> = [0, n / 4, n / 2, 3 * n / 4, n.saturating_sub(1)]
        .iter()
        .filter_map(|&i| points.get(i))
        .map(|&p| pt(p))
        .collect();
    json!({ "len": n, "samples": picks })
}

fn summary(chart: &LineChart) -> Value {
    // Everything but the points comes straight from the Serialize impl.
    let full = serde_json::to_value(chart).unwrap();
    json!({
        "title": full["title"],
        "x_label": full["x_label"],
        "y_label": full["y_label"],
        "size": [chart.width, chart.height],
        "legend": full["legend"],
        "series": chart.series.iter().map(|s| json!({
            "name": s.name, "color": s.color, "style": s.style, "width": s.width,
            "points": sample(&s.points),
        })).collect::<Vec<_>>(),
        "shaded": chart.shaded.iter().map(|a| json!({
            "name": a.name, "color": a.color, "baseline": a.baseline, "opacity": a.opacity,
            "points": sample(&a.points),
        })).collect::<Vec<_>>(),
        "annotations": chart.annotations.iter().map(|a| json!({
            "text": a.text,
            "at": pt(a.at),
            "arrow_to": a.arrow_to.map(pt),
        })).collect::<Vec<_>>(),
        "vlines": full["vlines"],
        "hlines": full["hlines"],
    })
}

#[test]
fn value_function_chart_data_snapshot() {
    insta::assert_json_snapshot!(summary(&value_chart()));
}

#[test]
fn kto_loss_chart_data_snapshot() {
    insta::assert_json_snapshot!(summary(&kto_chart()));
}
