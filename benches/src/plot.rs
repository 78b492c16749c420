//! The picture of a run (`--plot FILE.svg`, the report directory's
//! `plots.svg`): one panel per case in a grid. A latency case shows each
//! impl's latency at every percentile (x: 1/(1-p) on a log scale, labelled
//! 0%, 90%, 99%, ...; y: latency on a log scale), one line per impl; a
//! throughput case shows each impl's msgs/s as a bar. An impl keeps its
//! colour in every panel; the limit is black.
//!
//! Drawn after the run from the kept histograms and records, never while
//! anything is measured. SVG only: text stays `<text>` for the viewer to
//! render, so no font file is read and none needs to be installed.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::BenchError;
use crate::report::{si, ScenarioReport};
use crate::scenario::{Metric, LIMIT};
use crate::summary::RINGFLOW;

/// Panels side by side.
const COLUMNS: usize = 2;
/// Width and height of one panel, in SVG pixels.
const PANEL: (u32, u32) = (760, 470);
/// The band above the panels holding the title.
const TITLE_BAND: u32 = 64;
/// The deepest percentile drawn: 99.9999% (a million samples).
const MAX_NINES: f64 = 6.0;
/// Points per decade of 1/(1-p) on a percentile curve.
const STEPS_PER_NINE: u32 = 40;
/// The strip right of a latency chart that holds its legend: outside the
/// curves, so it can never hide one, whatever their shape.
const LEGEND_WIDTH: u32 = 190;
/// Legend rows: the first one's height from the panel's top, then the
/// spacing, in px.
const LEGEND_TOP: i32 = 58;
const LEGEND_ROW: i32 = 22;
const FONT: &str = "sans-serif";

/// Colours of the impls other than ringflow and the limit, in order of
/// first appearance in the run (Tableau 10, minus the blue ringflow has).
const PALETTE: [RGBColor; 9] = [
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x17, 0xbe, 0xcf),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x7f, 0x7f, 0x7f),
];
const RINGFLOW_COLOR: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const LIMIT_COLOR: RGBColor = RGBColor(0x11, 0x11, 0x11);

/// Draws every case of `reports` and writes the SVG to `path` (its
/// directory is created if missing).
pub fn write_svg(path: &Path, reports: &[ScenarioReport]) -> Result<(), BenchError> {
    let svg = render_svg(reports)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|source| BenchError::Output { path: dir.to_path_buf(), source })?;
    }
    fs::write(path, svg).map_err(|source| BenchError::Output { path: path.to_path_buf(), source })
}

/// One case to draw.
struct Panel<'a> {
    report: &'a ScenarioReport,
    case: &'static str,
    metric: Metric,
}

/// The colour of each impl of the run, the same in every panel.
pub struct Colors(BTreeMap<&'static str, RGBColor>);

impl Colors {
    /// Ringflow blue, the limit black, the others from the palette in
    /// order of first appearance (cycling if a run ever has more).
    pub fn of(reports: &[ScenarioReport]) -> Colors {
        let mut map = BTreeMap::new();
        let mut next = 0;
        for r in reports.iter().flat_map(|r| &r.records) {
            map.entry(r.imp).or_insert_with(|| match r.imp {
                RINGFLOW => RINGFLOW_COLOR,
                LIMIT => LIMIT_COLOR,
                _ => {
                    next += 1;
                    PALETTE[(next - 1) % PALETTE.len()]
                }
            });
        }
        Colors(map)
    }

    /// The colour of `imp` (grey for a name the run did not measure).
    pub fn get(&self, imp: &str) -> RGBColor {
        self.0.get(imp).copied().unwrap_or(PALETTE[PALETTE.len() - 1])
    }

    /// `#RRGGBB`, as the SVG writes it.
    #[cfg(test)]
    pub fn hex(&self, imp: &str) -> String {
        let RGBColor(r, g, b) = self.get(imp);
        format!("#{r:02X}{g:02X}{b:02X}")
    }
}

/// The SVG text of the plot of `reports`.
pub fn render_svg(reports: &[ScenarioReport]) -> Result<String, BenchError> {
    let panels: Vec<Panel> = reports
        .iter()
        .flat_map(|report| report.cases.iter().map(move |&(case, metric)| Panel { report, case, metric }))
        .collect();
    let colors = Colors::of(reports);
    let rows = panels.len().div_ceil(COLUMNS).max(1);
    let size = (PANEL.0 * COLUMNS as u32, TITLE_BAND + PANEL.1 * rows as u32);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let (title, body) = root.split_vertically(TITLE_BAND);
        draw_title(&title, reports)?;
        let cells = body.split_evenly((rows, COLUMNS));
        for (cell, panel) in cells.iter().zip(&panels) {
            match panel.metric {
                Metric::Latency => draw_latency(cell, panel, &colors)?,
                Metric::Throughput => draw_throughput(cell, panel, &colors)?,
            }
        }
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

fn plot_error(e: impl std::fmt::Display) -> BenchError {
    BenchError::Plot(e.to_string())
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn draw_title(area: &Area, reports: &[ScenarioReport]) -> Result<(), BenchError> {
    let names: Vec<&str> = reports.iter().map(|r| r.scenario).collect();
    let title = format!("ringflow bench: {}", if names.is_empty() { "nothing run".into() } else { names.join(", ") });
    let sub = "one panel per case, every impl measured in the same run; latency: lower is better, \
               msgs/s: higher is better; black = the physical limit";
    let left = Pos::new(HPos::Left, VPos::Top);
    area.draw(&Text::new(title, (16, 10), (FONT, 26).into_font().style(FontStyle::Bold).color(&BLACK).pos(left)))
        .map_err(plot_error)?;
    area.draw(&Text::new(sub, (16, 40), (FONT, 15).into_font().color(&BLACK.mix(0.7)).pos(left)))
        .map_err(plot_error)?;
    Ok(())
}

/// `1/(1-p)` as decades ("nines"): 0 = 0%, 1 = 90%, 2 = 99%, ...
fn percentile_of_nines(nines: f64) -> f64 {
    1.0 - 10f64.powf(-nines)
}

/// The x axis label at `nines`: "0%", "90%", "99%", "99.9%", ...
pub fn percentile_label(nines: f64) -> String {
    let whole = nines.round();
    if (nines - whole).abs() > 1e-9 || whole < 0.0 {
        return format!("{}%", 100.0 * percentile_of_nines(nines));
    }
    match whole as usize {
        0 => "0%".into(),
        1 => "90%".into(),
        2 => "99%".into(),
        n => format!("99.{}%", "9".repeat(n - 2)),
    }
}

/// A latency in ns as a label: "250 ns", "1.5 µs", "20 ms".
pub fn format_ns(ns: f64) -> String {
    let (v, unit) = match ns {
        x if x >= 1e9 => (x / 1e9, "s"),
        x if x >= 1e6 => (x / 1e6, "ms"),
        x if x >= 1e3 => (x / 1e3, "µs"),
        x => (x, "ns"),
    };
    let digits = if v >= 10.0 || (v - v.round()).abs() < 1e-9 { 0 } else { 1 };
    format!("{v:.digits$} {unit}")
}

/// Ticks for a log axis over `lo..hi`: 1-2-5 in every decade when it spans
/// one or two, 1-3 up to five, powers of ten alone beyond (labels about a
/// panel's height / 12 apart at most, so they never touch).
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let decades = (hi / lo).log10();
    let steps: &[f64] = if decades > 5.5 {
        &[1.0]
    } else if decades > 1.5 {
        &[1.0, 3.0]
    } else {
        &[1.0, 2.0, 5.0]
    };
    let mut ticks = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        ticks.extend(steps.iter().map(|s| s * decade).filter(|t| (lo..=hi).contains(t)));
        decade *= 10.0;
    }
    ticks
}

/// Unlabelled grid lines for a log axis over `lo..hi`: every whole
/// multiple of each decade that is not already a tick.
fn log_grid(lo: f64, hi: f64, ticks: &[f64]) -> Vec<f64> {
    let mut lines = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        let multiples = (1..10).map(|m| f64::from(m) * decade);
        lines.extend(multiples.filter(|v| (lo..=hi).contains(v) && !ticks.contains(v)));
        decade *= 10.0;
    }
    lines
}

/// A percentile curve: (nines, latency ns) from 0% to the deepest
/// percentile the samples support (1 - 1/n), at most `max_nines`.
fn percentile_curve(hist: &hdrhistogram::Histogram<u64>, max_nines: f64) -> Vec<(f64, f64)> {
    let deepest = (hist.len() as f64).log10().min(max_nines);
    let steps = (deepest * f64::from(STEPS_PER_NINE)).ceil() as u32;
    let mut points: Vec<(f64, f64)> = (0..=steps)
        .map(|i| (f64::from(i) / f64::from(STEPS_PER_NINE)).min(deepest))
        .map(|x| (x, hist.value_at_quantile(percentile_of_nines(x)).max(1) as f64))
        .collect();
    points.dedup_by(|a, b| a.0 == b.0);
    points
}

/// An impl's name in a legend; a case's reference (when not its limit)
/// is marked as such.
fn legend_label(imp: &str, reference: &str) -> String {
    if imp == reference && reference != LIMIT {
        format!("{imp} (reference)")
    } else {
        imp.to_string()
    }
}

fn draw_latency(area: &Area, panel: &Panel, colors: &Colors) -> Result<(), BenchError> {
    let reference = panel.report.reference(panel.case);
    let hists: Vec<_> = panel.report.histograms.iter().filter(|h| h.case == panel.case && !h.hist.is_empty()).collect();
    let deepest = hists.iter().map(|h| (h.hist.len() as f64).log10()).fold(0.0, f64::max);
    let x_max = deepest.ceil().clamp(2.0, MAX_NINES);
    let curves: Vec<_> = hists.iter().map(|h| (h.imp, percentile_curve(&h.hist, x_max))).collect();
    let lo = curves.iter().flat_map(|(_, c)| c).map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = curves.iter().flat_map(|(_, c)| c).map(|p| p.1).fold(1.0, f64::max);
    let lo = if lo.is_finite() { lo / 1.5 } else { 1.0 };
    let hi = hi * 1.5;
    // The x axis is 1/(1-p) on a log scale: 1 at 0%, 10 at 90%, 100 at 99%.
    let x_ticks: Vec<f64> = (0..=x_max as i32).map(|n| 10f64.powi(n)).collect();
    let y_ticks = log_ticks(lo, hi);
    let y_grid = log_grid(lo, hi, &y_ticks);
    let caption = format!("{} / {}: latency by percentile", panel.report.scenario, panel.case);
    let (chart_area, legend_area) = area.split_horizontally(PANEL.0 - LEGEND_WIDTH);
    let mut chart = ChartBuilder::on(&chart_area)
        .caption(caption, (FONT, 20))
        .margin(14)
        // The last percentile label is centred on the axis' end.
        .margin_right(34)
        .x_label_area_size(46)
        .y_label_area_size(78)
        .build_cartesian_2d(
            (1f64..10f64.powf(x_max)).log_scale().with_key_points(x_ticks),
            (lo..hi).log_scale().with_key_points(y_ticks).with_light_points(y_grid),
        )
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (log scale)")
        .x_label_formatter(&|x| percentile_label(x.log10()))
        .y_label_formatter(&|y| format_ns(*y))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .bold_line_style(BLACK.mix(0.15))
        .light_line_style(BLACK.mix(0.05))
        .draw()
        .map_err(plot_error)?;
    for (row, (imp, curve)) in curves.into_iter().enumerate() {
        let width = if imp == RINGFLOW { 3 } else { 2 };
        let style = colors.get(imp).stroke_width(width);
        chart
            .draw_series(LineSeries::new(curve.into_iter().map(|(nines, ns)| (10f64.powf(nines), ns)), style))
            .map_err(plot_error)?;
        let y = LEGEND_TOP + LEGEND_ROW * row as i32;
        legend_area.draw(&PathElement::new(vec![(4, y), (30, y)], style)).map_err(plot_error)?;
        let text = (FONT, 14).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
        legend_area.draw(&Text::new(legend_label(imp, reference), (38, y), text)).map_err(plot_error)?;
    }
    Ok(())
}

fn draw_throughput(area: &Area, panel: &Panel, colors: &Colors) -> Result<(), BenchError> {
    let reference = panel.report.reference(panel.case);
    let bars: Vec<(&str, f64)> =
        panel.report.records.iter().filter(|r| r.case == panel.case).map(|r| (r.imp, r.msgs_per_sec)).collect();
    let k = bars.len().max(1);
    let top = bars.iter().map(|b| b.1).fold(1.0, f64::max) * 1.3;
    let longest = bars.iter().map(|b| b.0.len()).max().unwrap_or(5);
    // The first impl (the limit) on top: segment k-1 is the highest.
    let row = |i: usize| k - 1 - i;
    let names: Vec<&str> = bars.iter().map(|b| b.0).collect();
    let caption = format!("{} / {}: msgs/s", panel.report.scenario, panel.case);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 20))
        .margin(14)
        .x_label_area_size(46)
        .y_label_area_size(24 + 8 * longest as u32)
        // Integer ranges are inclusive here: 0..k-1 is k segments.
        .build_cartesian_2d(0f64..top, (0..k - 1).into_segmented())
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(k)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(s) if *s < k => names.get(k - 1 - s).copied().unwrap_or("").to_string(),
            _ => String::new(),
        })
        .x_labels(6)
        // Axis labels need no decimals of zeros ("50M", not "50.00M").
        .x_label_formatter(&|x| si(*x).replace(".00", ""))
        .x_desc(if reference == LIMIT {
            "msgs/s (higher is better)"
        } else {
            "msgs/s (higher is better; no limit measured)"
        })
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .bold_line_style(BLACK.mix(0.15))
        .light_line_style(TRANSPARENT)
        .draw()
        .map_err(plot_error)?;
    let value_style = (FONT, 14).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, (imp, rate)) in bars.iter().enumerate() {
        let y = row(i);
        let mut bar = Rectangle::new(
            [(0.0, SegmentValue::Exact(y)), (*rate, SegmentValue::Exact(y + 1))],
            colors.get(imp).filled(),
        );
        bar.set_margin(7, 7, 0, 0);
        chart.draw_series(std::iter::once(bar)).map_err(plot_error)?;
        let label = EmptyElement::at((*rate, SegmentValue::CenterOf(y)))
            + Text::new(format!("{} msgs/s", si(*rate)), (6, 0), value_style.clone());
        chart.draw_series(std::iter::once(label)).map_err(plot_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::measure::new_histogram;
    use crate::report::{CaseHistogram, Record};

    #[test]
    fn percentile_labels() {
        let labels: Vec<String> = (0..=5).map(|n| percentile_label(f64::from(n))).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]);
        assert_eq!(format_ns(180.0), "180 ns");
        assert_eq!(format_ns(1500.0), "1.5 µs");
        assert_eq!(format_ns(20e6), "20 ms");
    }

    #[test]
    fn log_ticks_stay_in_range_and_sparse() {
        assert_eq!(log_ticks(90.0, 1100.0), [100.0, 200.0, 500.0, 1000.0]);
        assert_eq!(log_ticks(90.0, 11000.0), [100.0, 300.0, 1000.0, 3000.0, 10000.0]);
        assert_eq!(log_ticks(150.0, 600.0), [200.0, 500.0]);
        assert_eq!(log_ticks(50.0, 1e7), [100.0, 300.0, 1e3, 3e3, 1e4, 3e4, 1e5, 3e5, 1e6, 3e6, 1e7]);
        assert_eq!(log_ticks(50.0, 2e8), [100.0, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8]);
    }

    fn kept(case: &'static str, imp: &'static str, base: u64) -> CaseHistogram {
        let mut hist = new_histogram().expect("histogram");
        for i in 0..5_000 {
            hist.record(base + i % 50 + (i / 4_900) * base * 20).expect("record");
        }
        CaseHistogram {
            case,
            imp,
            hist,
            run_start: SystemTime::UNIX_EPOCH,
            window_offset: Duration::ZERO,
            window: Duration::from_millis(1),
        }
    }

    /// One latency case (three impls) and one throughput case (two).
    fn report() -> ScenarioReport {
        let lat = [(LIMIT, 100), (RINGFLOW, 130), ("crossbeam", 400)];
        let thr = [(LIMIT, 90e6), (RINGFLOW, 70e6)];
        let mut records: Vec<Record> =
            lat.iter().map(|&(imp, p50)| Record::for_tests("pingpong", imp, Metric::Latency, p50, 0.0)).collect();
        records.extend(thr.iter().map(|&(imp, rate)| Record::for_tests("stream", imp, Metric::Throughput, 1, rate)));
        let mut histograms: Vec<_> = lat.iter().map(|&(imp, base)| kept("pingpong", imp, base)).collect();
        histograms.extend(thr.iter().map(|&(imp, _)| kept("stream", imp, 50)));
        ScenarioReport {
            scenario: "ring",
            records,
            histograms,
            cases: vec![("pingpong", Metric::Latency), ("stream", Metric::Throughput)],
            ..ScenarioReport::default()
        }
    }

    /// The plot is well-formed SVG: one line per impl of the latency case,
    /// in the impl's colour and named in the legend; one bar per impl of
    /// the throughput case, in its colour and named on the axis.
    #[test]
    fn the_svg_is_well_formed_with_one_series_per_impl() {
        let reports = [report()];
        let svg = render_svg(&reports).expect("render");
        let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let colors = Colors::of(&reports);
        let elements = |tag: &str| doc.descendants().filter(move |n| n.has_tag_name(tag)).collect::<Vec<_>>();
        let texts: Vec<&str> = elements("text").iter().filter_map(|n| n.text()).map(str::trim).collect();
        // A percentile curve has many points; the legend's sample has two.
        let curves: Vec<String> = elements("polyline")
            .iter()
            .filter(|n| n.attribute("points").is_some_and(|p| p.split_whitespace().count() > 10))
            .filter_map(|n| n.attribute("stroke").map(str::to_string))
            .collect();
        assert_eq!(curves.len(), 3, "{curves:?}");
        for imp in [LIMIT, RINGFLOW, "crossbeam"] {
            assert_eq!(curves.iter().filter(|c| **c == colors.hex(imp)).count(), 1, "{imp}: {curves:?}");
            assert!(texts.contains(&imp), "{imp} not in the legend: {texts:?}");
        }
        let bars: Vec<String> =
            elements("rect").iter().filter_map(|n| n.attribute("fill").map(str::to_string)).collect();
        for imp in [LIMIT, RINGFLOW] {
            assert_eq!(bars.iter().filter(|b| **b == colors.hex(imp)).count(), 1, "{imp}: {bars:?}");
        }
        assert!(texts.contains(&"70.00M msgs/s"), "{texts:?}");
        for label in ["0%", "90%", "99%", "99.9%"] {
            assert!(texts.contains(&label), "no x label {label}: {texts:?}");
        }
        assert!(texts.iter().any(|t| t.ends_with(" ns")), "no latency label: {texts:?}");
    }

    /// No scenario, a case whose every impl failed, a case of one impl.
    #[test]
    fn sparse_runs_still_draw() {
        let svg = render_svg(&[]).expect("render");
        roxmltree::Document::parse(&svg).expect("well-formed XML");
        let lone = ScenarioReport {
            scenario: "t",
            records: vec![Record::for_tests("stream", RINGFLOW, Metric::Throughput, 1, 5e3)],
            cases: vec![("failed", Metric::Latency), ("stream", Metric::Throughput)],
            ..ScenarioReport::default()
        };
        let svg = render_svg(&[lone]).expect("render");
        roxmltree::Document::parse(&svg).expect("well-formed XML");
        assert!(svg.contains("5.00k msgs/s"));
    }

    #[test]
    fn log_grid_fills_the_decades_between_ticks() {
        assert_eq!(log_grid(150.0, 1000.0, &[200.0, 500.0, 1000.0]), [300.0, 400.0, 600.0, 700.0, 800.0, 900.0]);
    }
}
