//! Charts of a suite's results, as SVG and PNG, for a person to look at.
//!
//! Three charts, one row (group of bars) per scenario, so long scenario names stay readable
//! on the left however many scenarios there are (the height grows past 700 pixels when they
//! do not fit):
//! * `throughput`: achieved packets per second up and down, XDP and socket backend side by
//!   side for scenarios that differ only in backend, labelled with their ratio;
//! * `latency`: p50/p90/p99/max of one-way latency each way and of set-up, log scale;
//! * `worker-cost`: worker nanoseconds per packet next to our and OpenSSL's crypto floors,
//!   labelled with both ratios.
//!
//! Text goes through plotters' `ab_glyph` feature with a TrueType font read at run time
//! (Debian's fonts-dejavu-core by default), so rendering needs no fontconfig or freetype.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use plotters::coord::Shift;
use plotters::coord::combinators::WithKeyPoints;
use plotters::coord::types::RangedCoordi32;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::{
    Backend, Latency, Ns, PairKey, ReportError, ScenarioResult, SuiteResults, Times, si,
};

/// The font used when none is given: fonts-dejavu-core's sans-serif.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Width of every chart, pixels.
pub const WIDTH_PX: u32 = 1200;
/// Height of a chart whose rows fit; charts with more rows grow.
pub const MIN_HEIGHT_PX: u32 = 700;
/// The tallest chart: past this, rows get thinner instead (the bitmap stays reasonable).
pub const MAX_HEIGHT_PX: u32 = 20_000;

/// The title and legend strip above each chart.
const HEADER_PX: u32 = 76;
/// Below the plot: the value axis, its labels and description.
const FOOTER_PX: u32 = 110;
const FONT: &str = "sans-serif";

/// `xpptp-bench chart`: renders the charts of a results file.
#[derive(Debug, clap::Args)]
pub struct ChartArgs {
    /// The results JSON (`xpptp-bench suite` writes it into results/).
    pub results: PathBuf,
    /// Where to write throughput, latency and worker-cost charts (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// A TrueType or OpenType font for the text.
    #[arg(long, default_value = DEFAULT_FONT)]
    pub font: PathBuf,
    /// Write SVG only, no PNG.
    #[arg(long)]
    pub no_png: bool,
}

/// How to render.
#[derive(Debug, Clone)]
pub struct ChartOptions {
    /// The font for all text; the first font a process renders with is the one it keeps.
    pub font: PathBuf,
    /// Write a PNG next to each SVG.
    pub png: bool,
}

impl Default for ChartOptions {
    fn default() -> Self {
        Self {
            font: PathBuf::from(DEFAULT_FONT),
            png: true,
        }
    }
}

/// Rendering charts failed.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// The results file could not be read.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// The font file could not be read.
    #[error(
        "cannot read font {path} (install Debian's fonts-dejavu-core, as scripts/setup.sh \
         does, or give another TrueType font with --font)"
    )]
    FontRead {
        /// The font file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The font file is not a font.
    #[error("font {path} is not a TrueType or OpenType font; give one with --font")]
    FontInvalid {
        /// The font file.
        path: PathBuf,
    },
    /// The output directory could not be created.
    #[error("cannot create output directory {path}")]
    OutDir {
        /// The directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// Drawing or writing a chart failed.
    #[error("chart {path}: {message}")]
    Draw {
        /// The chart file.
        path: PathBuf,
        /// What plotters said.
        message: String,
    },
}

/// `xpptp-bench chart`: reads the results, renders every chart, returns the files written.
pub fn run(args: &ChartArgs) -> Result<Vec<PathBuf>, ChartError> {
    let mut results = SuiteResults::load(&args.results)?;
    // Derived figures come from the file's own; recomputing them keeps the notes right for
    // a file written before they were computed.
    results.compute_ratios();
    let options = ChartOptions {
        font: args.font.clone(),
        png: !args.no_png,
    };
    render_all(&results, &args.out, &options)
}

/// Renders every chart that has data into `out` (`throughput`, `latency`, `worker-cost`,
/// each `.svg` and, with [`ChartOptions::png`], `.png`); returns the files written. A chart
/// no scenario has figures for is not written.
pub fn render_all(
    results: &SuiteResults,
    out: &Path,
    options: &ChartOptions,
) -> Result<Vec<PathBuf>, ChartError> {
    register_font(&options.font)?;
    fs::create_dir_all(out).map_err(|source| ChartError::OutDir {
        path: out.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    let skipped = |chart: &str| {
        tracing::info!(chart, "no scenario has figures for this chart; skipped");
    };
    match throughput_chart(results) {
        Some(chart) => written.extend(render(&chart, &out.join("throughput"), options.png)?),
        None => skipped("throughput"),
    }
    match latency_chart(results) {
        Some(chart) => written.extend(render(&chart, &out.join("latency"), options.png)?),
        None => skipped("latency"),
    }
    match worker_cost_chart(results) {
        Some(chart) => written.extend(render(&chart, &out.join("worker-cost"), options.png)?),
        None => skipped("worker-cost"),
    }
    Ok(written)
}

/// The font registered with plotters, if any: plotters keeps fonts for the process's life.
static REGISTERED_FONT: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Reads the font and registers it as plotters' sans-serif, once per process.
fn register_font(path: &Path) -> Result<(), ChartError> {
    let mut registered = REGISTERED_FONT
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(first) = registered.as_ref() {
        if first != path {
            tracing::debug!(font = %first.display(), "keeping the font registered first");
        }
        return Ok(());
    }
    register_family(FONT, path)?;
    *registered = Some(path.to_path_buf());
    Ok(())
}

/// Reads a font file and registers it with plotters as `family`.
fn register_family(family: &str, path: &Path) -> Result<(), ChartError> {
    let bytes = fs::read(path).map_err(|source| ChartError::FontRead {
        path: path.to_path_buf(),
        source,
    })?;
    // plotters keeps fonts for the life of the process; this runs once per process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(family, FontStyle::Normal, bytes).map_err(|_| {
        ChartError::FontInvalid {
            path: path.to_path_buf(),
        }
    })
}

/// Something that draws itself on any plotters backend.
trait Chart {
    /// Pixels high (the width is [`WIDTH_PX`]).
    fn height(&self) -> u32;
    /// Draws the whole chart on `root`.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

/// Writes `stem.svg` and, when asked, `stem.png`.
fn render(chart: &impl Chart, stem: &Path, png: bool) -> Result<Vec<PathBuf>, ChartError> {
    let size = (WIDTH_PX, chart.height());
    let svg = stem.with_extension("svg");
    let draw_error = |path: &Path| {
        let path = path.to_path_buf();
        move |message| ChartError::Draw { path, message }
    };
    {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        chart.draw(&root).map_err(draw_error(&svg))?;
        root.present()
            .map_err(|e| e.to_string())
            .map_err(draw_error(&svg))?;
    }
    let mut written = vec![svg];
    if png {
        let path = stem.with_extension("png");
        {
            let root = BitMapBackend::new(&path, size).into_drawing_area();
            chart.draw(&root).map_err(draw_error(&path))?;
            root.present()
                .map_err(|e| e.to_string())
                .map_err(draw_error(&path))?;
        }
        written.push(path);
    }
    Ok(written)
}

/// One series of bars: one value (or none) per row.
#[derive(Debug)]
struct Series {
    name: &'static str,
    color: RGBColor,
    values: Vec<Option<f64>>,
}

/// Horizontal grouped bars: a row per group, a bar per series in each row.
#[derive(Debug)]
struct BarChart {
    title: String,
    value_desc: &'static str,
    rows: Vec<String>,
    series: Vec<Series>,
    /// Text after each row's longest bar.
    notes: Vec<Option<String>>,
    value_label: fn(f64) -> String,
}

const PX_PER_BAR: u32 = 13;

impl Chart for BarChart {
    fn height(&self) -> u32 {
        let row_px = PX_PER_BAR.saturating_mul(self.series.len() as u32) + 14;
        height_for(row_px, self.rows.len())
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (header, body) = root.split_vertically(HEADER_PX);
        let legend: Vec<(&str, RGBColor, Mark)> = self
            .series
            .iter()
            .map(|s| (s.name, s.color, Mark::Bar))
            .collect();
        draw_header(&header, &self.title, &legend)?;
        let n = self.rows.len();
        let largest = self
            .series
            .iter()
            .flat_map(|s| s.values.iter().flatten())
            .filter(|v| v.is_finite())
            .fold(0.0f64, |a, &b| a.max(b));
        // Room on the right for the notes; a bound keeps absurd figures from a hand-edited
        // file from overflowing the axis.
        let x_max = if largest > 0.0 {
            (largest * 1.3).min(1e18)
        } else {
            1.0
        };
        let label_px = widest_label(root, &self.rows)?;
        let mut chart = ChartBuilder::on(&body)
            .margin(16)
            .margin_right(40)
            .margin_top(4)
            .x_label_area_size(60)
            .y_label_area_size(label_px)
            .build_cartesian_2d(0f64..x_max, rows_axis(n))
            .map_err(|e| e.to_string())?;
        let row_label = |y: &i32| row_at(&self.rows, *y).to_owned();
        let value_label = |x: &f64| (self.value_label)(*x);
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&row_label)
            .x_label_formatter(&value_label)
            .x_desc(self.value_desc)
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(|e| e.to_string())?;
        // Bars fill the middle 80 % of a row, a slot each, a tenth of a slot apart.
        let slot = ROW * 8 / 10 / clamp_rows(self.series.len()).max(1);
        for (s, series) in (0i32..).zip(&self.series) {
            let bars = series.values.iter().enumerate().filter_map(|(row, value)| {
                // plotters overflows mapping values far outside the axis.
                let value = value.filter(|v| v.is_finite())?.clamp(0.0, x_max);
                let top = row_top(n, row) - ROW / 10 - slot * s;
                Some(Rectangle::new(
                    [(0.0, top - slot * 9 / 10), (value, top)],
                    series.color.filled(),
                ))
            });
            chart.draw_series(bars).map_err(|e| e.to_string())?;
        }
        let note_style = TextStyle::from((FONT, 14).into_font())
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        let notes = self.notes.iter().enumerate().filter_map(|(row, note)| {
            let note = note.as_ref()?;
            let end = self
                .series
                .iter()
                .filter_map(|s| s.values.get(row).copied().flatten())
                .fold(0.0f64, f64::max)
                .min(x_max);
            let at = (end, row_top(n, row) - ROW / 2);
            Some(EmptyElement::at(at) + Text::new(note.clone(), (8, 0), note_style.clone()))
        });
        chart.draw_series(notes).map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// A latency distribution's row: which scenario, which latency.
#[derive(Debug)]
struct LatencyRow {
    label: String,
    latency: Latency,
}

/// Dots at p50/p90/p99/max per row on a log axis, joined by a line.
#[derive(Debug)]
struct LatencyChart {
    title: String,
    rows: Vec<LatencyRow>,
}

const PX_PER_LATENCY_ROW: u32 = 30;

/// How one percentile is drawn.
#[derive(Debug)]
struct Percentile {
    name: &'static str,
    color: RGBColor,
    mark: Mark,
    value: fn(&Latency) -> u64,
}

/// The four percentiles the latency chart shows.
const PERCENTILES: [Percentile; 4] = [
    Percentile {
        name: "p50",
        color: RGBColor(31, 119, 180),
        mark: Mark::Circle,
        value: |l| l.p50_ns,
    },
    Percentile {
        name: "p90",
        color: RGBColor(44, 160, 44),
        mark: Mark::Triangle,
        value: |l| l.p90_ns,
    },
    Percentile {
        name: "p99",
        color: RGBColor(255, 127, 14),
        mark: Mark::Square,
        value: |l| l.p99_ns,
    },
    Percentile {
        name: "max",
        color: RGBColor(214, 39, 40),
        mark: Mark::Cross,
        value: |l| l.max_ns,
    },
];

impl Chart for LatencyChart {
    fn height(&self) -> u32 {
        height_for(PX_PER_LATENCY_ROW, self.rows.len())
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (header, body) = root.split_vertically(HEADER_PX);
        let legend: Vec<(&str, RGBColor, Mark)> = PERCENTILES
            .iter()
            .map(|p| (p.name, p.color, p.mark))
            .collect();
        draw_header(&header, &self.title, &legend)?;
        let n = self.rows.len();
        let values = || {
            self.rows
                .iter()
                .flat_map(|r| [r.latency.p50_ns, r.latency.max_ns])
                .filter(|&v| v > 0)
        };
        let low = values().min().unwrap_or(1) as f64 / 2.0;
        let high = values().max().unwrap_or(1) as f64 * 2.0;
        let labels: Vec<String> = self.rows.iter().map(|r| r.label.clone()).collect();
        let label_px = widest_label(root, &labels)?;
        let mut chart = ChartBuilder::on(&body)
            .margin(16)
            .margin_right(40)
            .margin_top(4)
            .x_label_area_size(60)
            .y_label_area_size(label_px)
            .build_cartesian_2d((low.max(1.0)..high.max(2.0)).log_scale(), rows_axis(n))
            .map_err(|e| e.to_string())?;
        let row_label = |y: &i32| row_at(&labels, *y).to_owned();
        let time_label = |x: &f64| ns_label(*x);
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&row_label)
            .x_label_formatter(&time_label)
            .x_desc("latency (log scale; ns, µs, ms)")
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(|e| e.to_string())?;
        let spans = self.rows.iter().enumerate().map(|(row, r)| {
            let y = row_top(n, row) - ROW / 2;
            PathElement::new(
                vec![(pos(r.latency.p50_ns), y), (pos(r.latency.max_ns), y)],
                RGBColor(160, 160, 160).stroke_width(2),
            )
        });
        chart.draw_series(spans).map_err(|e| e.to_string())?;
        for Percentile {
            color, mark, value, ..
        } in PERCENTILES
        {
            let points = self
                .rows
                .iter()
                .enumerate()
                .map(|(row, r)| (pos(value(&r.latency)), row_top(n, row) - ROW / 2));
            let style = color.filled();
            match mark {
                Mark::Circle => chart.draw_series(points.map(|p| Circle::new(p, 6, style))),
                Mark::Triangle => {
                    chart.draw_series(points.map(|p| TriangleMarker::new(p, 7, style)))
                }
                Mark::Square => chart.draw_series(
                    points.map(|p| EmptyElement::at(p) + Rectangle::new([(-5, -5), (5, 5)], style)),
                ),
                Mark::Cross | Mark::Bar => {
                    chart.draw_series(points.map(|p| Cross::new(p, 6, color.stroke_width(3))))
                }
            }
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// A value on the log axis (which has no 0).
fn pos(ns: u64) -> f64 {
    ns.max(1) as f64
}

/// How a legend entry and its data are marked.
#[derive(Debug, Clone, Copy)]
enum Mark {
    Bar,
    Circle,
    Triangle,
    Square,
    Cross,
}

/// The title, then the legend on one line.
fn draw_header<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    legend: &[(&str, RGBColor, Mark)],
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let title_style = TextStyle::from((FONT, 24).into_font()).color(&BLACK);
    area.draw(&Text::new(title.to_owned(), (20, 12), title_style))
        .map_err(e)?;
    let style = TextStyle::from((FONT, 15).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let (mut x, y) = (20i32, 56i32);
    for (name, color, mark) in legend {
        let at = (x + 7, y);
        match mark {
            Mark::Bar | Mark::Square => area.draw(&Rectangle::new(
                [(x, y - 7), (x + 14, y + 7)],
                color.filled(),
            )),
            Mark::Circle => area.draw(&Circle::new(at, 6, color.filled())),
            Mark::Triangle => area.draw(&TriangleMarker::new(at, 7, color.filled())),
            Mark::Cross => area.draw(&Cross::new(at, 6, color.stroke_width(3))),
        }
        .map_err(e)?;
        area.draw(&Text::new((*name).to_owned(), (x + 22, y), style.clone()))
            .map_err(e)?;
        let (width, _) = area.estimate_text_size(name, &style).map_err(e)?;
        x = x.saturating_add(22 + width as i32 + 28);
    }
    Ok(())
}

/// Pixels for the row labels: the widest label plus a margin, at most half the width.
fn widest_label<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    labels: &[String],
) -> Result<u32, String> {
    let style = TextStyle::from((FONT, 14).into_font());
    let mut widest = 0;
    for label in labels {
        let (width, _) = area
            .estimate_text_size(label, &style)
            .map_err(|e| e.to_string())?;
        widest = widest.max(width);
    }
    Ok((widest + 20).min(WIDTH_PX / 2))
}

/// Axis units per row: the row axis is in thousandths of a row (plotters formats labels
/// only for integer axes when key points are given).
const ROW: i32 = 1000;
/// Rows on an axis at most (a million thousandths stay far from `i32::MAX`).
const MAX_ROWS: i32 = 1_000_000;

/// A row count or index as axis rows.
fn clamp_rows(rows: usize) -> i32 {
    i32::try_from(rows).unwrap_or(MAX_ROWS).min(MAX_ROWS)
}

/// Pixels high for `rows` rows of `row_px` each, between the minimum and maximum heights.
fn height_for(row_px: u32, rows: usize) -> u32 {
    let rows = u32::try_from(rows).unwrap_or(u32::MAX);
    (HEADER_PX + FOOTER_PX)
        .saturating_add(row_px.saturating_mul(rows))
        .clamp(MIN_HEIGHT_PX, MAX_HEIGHT_PX)
}

/// The row axis: row i of n (top to bottom) spans `[(n-1-i), (n-i))` rows, labelled at its
/// middle.
fn rows_axis(n: usize) -> WithKeyPoints<RangedCoordi32> {
    let n = clamp_rows(n);
    let middles = (0..n).map(|i| i * ROW + ROW / 2).collect();
    (0..n * ROW).with_key_points(middles)
}

/// The top of row `row` of `n` on [`rows_axis`].
fn row_top(n: usize, row: usize) -> i32 {
    (clamp_rows(n) - clamp_rows(row)) * ROW
}

/// The label of the row at axis position `y`.
fn row_at(labels: &[String], y: i32) -> &str {
    let Ok(from_bottom) = usize::try_from(y.div_euclid(ROW)) else {
        return "";
    };
    labels
        .len()
        .checked_sub(from_bottom.saturating_add(1))
        .and_then(|row| labels.get(row))
        .map_or("", String::as_str)
}

/// Packets per second on an axis: "150k", "1.5M".
fn pps_label(pps: f64) -> String {
    let (value, prefix) = si(pps);
    format!("{value:.3}")
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_owned()
        + prefix
}

/// Nanoseconds on an axis: "500 ns", "1.5 µs", "10 ms".
fn ns_label(ns: f64) -> String {
    let text = Ns(ns).to_string();
    match text.split_once(' ') {
        Some((number, unit)) if number.contains('.') => {
            format!(
                "{} {unit}",
                number.trim_end_matches('0').trim_end_matches('.')
            )
        }
        _ => text,
    }
}

/// Throughput per scenario, the two backends of a pair in one row.
fn throughput_chart(results: &SuiteResults) -> Option<BarChart> {
    // Rows: scenarios that carried traffic, one per pair key and backend.
    let mut rows: Vec<(PairKey, String, [Option<&ScenarioResult>; 2])> = Vec::new();
    for s in &results.scenarios {
        if s.upstream.is_none() && s.downstream.is_none() {
            continue;
        }
        let key = s.conditions.pair_key();
        let slot = usize::from(s.conditions.backend == Backend::Socket);
        let free = rows
            .iter_mut()
            .find(|(k, _, pair)| *k == key && pair.get(slot).is_some_and(Option::is_none));
        match free {
            Some((_, _, pair)) => {
                if let Some(place) = pair.get_mut(slot) {
                    *place = Some(s);
                }
            }
            None => {
                let mut pair = [None, None];
                if let Some(place) = pair.get_mut(slot) {
                    *place = Some(s);
                }
                rows.push((key, s.conditions.pair_label(), pair));
            }
        }
    }
    if rows.is_empty() {
        return None;
    }
    let value = |backend: usize, up: bool| -> Vec<Option<f64>> {
        rows.iter()
            .map(|(_, _, pair)| {
                let s = pair.get(backend).copied().flatten()?;
                let d = if up { &s.upstream } else { &s.downstream };
                d.as_ref().map(|d| d.achieved_pps)
            })
            .collect()
    };
    let series = vec![
        Series {
            name: "XDP upstream",
            color: RGBColor(31, 119, 180),
            values: value(0, true),
        },
        Series {
            name: "XDP downstream",
            color: RGBColor(255, 127, 14),
            values: value(0, false),
        },
        Series {
            name: "socket upstream",
            color: RGBColor(158, 202, 225),
            values: value(1, true),
        },
        Series {
            name: "socket downstream",
            color: RGBColor(253, 208, 162),
            values: value(1, false),
        },
    ];
    let notes = rows
        .iter()
        .map(|(_, _, pair)| {
            let ratio = pair
                .iter()
                .flatten()
                .find_map(|s| s.ratios.xdp_over_socket)?;
            Some(format!("XDP {} socket", Times(Some(ratio))))
        })
        .collect();
    Some(BarChart {
        title: format!("Throughput per scenario ({})", results.machine),
        value_desc: "achieved throughput (packets/s)",
        rows: rows.into_iter().map(|(_, label, _)| label).collect(),
        series,
        notes,
        value_label: pps_label,
    })
}

/// Latency percentiles per scenario: set-up, upstream and downstream rows.
fn latency_chart(results: &SuiteResults) -> Option<LatencyChart> {
    let mut rows = Vec::new();
    for s in &results.scenarios {
        let traffic = [("upstream", &s.upstream), ("downstream", &s.downstream)]
            .into_iter()
            .filter_map(|(way, d)| Some((way, d.as_ref()?.latency?)));
        let setup = s.setup.as_ref().map(|x| ("set-up", x.latency));
        for (what, latency) in setup.into_iter().chain(traffic) {
            if latency.samples > 0 {
                rows.push(LatencyRow {
                    label: format!("{} {what}", s.name),
                    latency,
                });
            }
        }
    }
    (!rows.is_empty()).then(|| LatencyChart {
        title: format!("Latency percentiles per scenario ({})", results.machine),
        rows,
    })
}

/// Worker ns/packet and the two crypto floors per scenario.
fn worker_cost_chart(results: &SuiteResults) -> Option<BarChart> {
    let scenarios: Vec<&ScenarioResult> = results
        .scenarios
        .iter()
        .filter(|s| s.worker_ns_per_packet.is_some() || s.floor.is_some())
        .collect();
    if scenarios.is_empty() {
        return None;
    }
    let series = vec![
        Series {
            name: "worker",
            color: RGBColor(31, 119, 180),
            values: scenarios.iter().map(|s| s.worker_ns_per_packet).collect(),
        },
        Series {
            name: "our MPPE floor",
            color: RGBColor(44, 160, 44),
            values: scenarios
                .iter()
                .map(|s| s.floor.map(|f| f.ours_ns_per_packet))
                .collect(),
        },
        Series {
            name: "OpenSSL MPPE floor",
            color: RGBColor(150, 150, 150),
            values: scenarios
                .iter()
                .map(|s| s.floor.map(|f| f.openssl_ns_per_packet))
                .collect(),
        },
    ];
    let notes = scenarios
        .iter()
        .map(|s| {
            s.ratios.worker_over_our_floor.map(|_| {
                format!(
                    "{} our floor, {} OpenSSL's",
                    Times(s.ratios.worker_over_our_floor),
                    Times(s.ratios.worker_over_openssl_floor)
                )
            })
        })
        .collect();
    // Names are unique in a suite; keep them so even if they are not.
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let rows = scenarios
        .iter()
        .map(|s| {
            let count = seen.entry(s.name.as_str()).or_insert(0);
            *count += 1;
            if *count == 1 {
                s.name.clone()
            } else {
                format!("{} ({count})", s.name)
            }
        })
        .collect();
    Some(BarChart {
        title: format!("Worker cost vs crypto floor ({})", results.machine),
        value_desc: "CPU time per packet (ns, µs)",
        rows,
        series,
        notes,
        value_label: ns_label,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::report::tests::suite;

    fn options() -> ChartOptions {
        ChartOptions::default()
    }

    /// Every text node of an SVG, joined.
    fn svg_text(path: &Path) -> String {
        let svg = fs::read_to_string(path).unwrap();
        let doc = roxmltree::Document::parse(&svg)
            .unwrap_or_else(|e| panic!("{} is not XML: {e}", path.display()));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        doc.descendants()
            .filter(roxmltree::Node::is_text)
            .filter_map(|n| n.text())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn charts_render_from_a_suite_with_a_backend_pair() {
        let dir = tempfile::tempdir().unwrap();
        let suite = suite();
        let written = render_all(&suite, dir.path(), &options()).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "throughput.svg",
                "throughput.png",
                "latency.svg",
                "latency.png",
                "worker-cost.svg",
                "worker-cost.png"
            ]
        );
        for path in &written {
            assert!(
                fs::metadata(path).unwrap().len() > 1000,
                "{}",
                path.display()
            );
        }
        let png = fs::read(dir.path().join("latency.png")).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

        let throughput = svg_text(&dir.path().join("throughput.svg"));
        // The XDP/socket pair shares one row; the lone scenario has its own.
        let pair = suite.scenarios[0].conditions.pair_label();
        let lone = suite.scenarios[2].conditions.pair_label();
        assert_eq!(throughput.matches(pair.as_str()).count(), 1, "{throughput}");
        assert!(throughput.contains(&lone), "{throughput}");
        assert!(throughput.contains("XDP 3.00× socket"), "{throughput}");
        assert!(throughput.contains("achieved throughput (packets/s)"));
        for legend in ["XDP upstream", "socket downstream"] {
            assert!(throughput.contains(legend), "{throughput}");
        }

        let latency = svg_text(&dir.path().join("latency.svg"));
        let cost = svg_text(&dir.path().join("worker-cost.svg"));
        for s in &suite.scenarios {
            for what in ["set-up", "upstream", "downstream"] {
                let row = format!("{} {what}", s.name);
                assert!(latency.contains(&row), "{row} missing:\n{latency}");
            }
            assert!(cost.contains(&s.name), "{} missing:\n{cost}", s.name);
        }
        assert!(latency.contains("p99") && latency.contains("log scale"));
        assert!(cost.contains("1.20× our floor, 1.00× OpenSSL's"), "{cost}");
        assert!(cost.contains("CPU time per packet"));
    }

    #[test]
    fn charts_without_figures_are_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut suite = suite();
        for s in &mut suite.scenarios {
            s.upstream = None;
            s.downstream = None;
            s.workers.clear();
            s.worker_ns_per_packet = None;
            s.floor = None;
        }
        let options = ChartOptions {
            png: false,
            ..options()
        };
        let written = render_all(&suite, dir.path(), &options).unwrap();
        assert_eq!(written, [dir.path().join("latency.svg")]);
    }

    #[test]
    fn charts_survive_absurd_figures() {
        let dir = tempfile::tempdir().unwrap();
        let mut suite = suite();
        let s = &mut suite.scenarios[0];
        if let Some(up) = s.upstream.as_mut() {
            up.achieved_pps = 1e300;
            up.latency = Some(Latency {
                p50_ns: 0,
                p90_ns: 0,
                p99_ns: u64::MAX,
                max_ns: u64::MAX,
                samples: 1,
            });
        }
        if let Some(down) = s.downstream.as_mut() {
            down.achieved_pps = -5.0;
        }
        s.worker_ns_per_packet = Some(0.0);
        s.floor = Some(crate::report::CryptoFloor {
            ours_ns_per_packet: -1.0,
            openssl_ns_per_packet: f64::MAX,
        });
        s.compute_ratios();
        let options = ChartOptions {
            png: true,
            ..options()
        };
        let written = render_all(&suite, dir.path(), &options).unwrap();
        assert_eq!(written.len(), 6);
    }

    #[test]
    fn many_scenarios_make_a_taller_chart() {
        let mut suite = suite();
        let template = suite.scenarios[2].clone();
        for i in 0..40 {
            let mut s = template.clone();
            s.name = format!("scenario-{i}");
            s.conditions.sessions = i;
            suite.scenarios.push(s);
        }
        let chart = throughput_chart(&suite).unwrap();
        assert_eq!(chart.rows.len(), 42);
        assert!(chart.height() > MIN_HEIGHT_PX);
        let few = throughput_chart(&suite_of_three()).unwrap();
        assert_eq!(few.height(), MIN_HEIGHT_PX);
    }

    fn suite_of_three() -> SuiteResults {
        suite()
    }

    #[test]
    fn row_labels_map_axis_positions_to_rows_top_down() {
        let labels = ["first".to_owned(), "second".to_owned(), "third".to_owned()];
        assert_eq!(row_at(&labels, 2500), "first");
        assert_eq!(row_at(&labels, 1500), "second");
        assert_eq!(row_at(&labels, 500), "third");
        assert_eq!(row_at(&labels, 3500), "");
        assert_eq!(row_at(&labels, -500), "");
        assert_eq!(row_top(3, 0), 3000);
        assert_eq!(row_top(3, 2), 1000);
        assert_eq!(height_for(10, 1_000_000_000), MAX_HEIGHT_PX);
        assert_eq!(pps_label(150_000.0), "150k");
        assert_eq!(pps_label(1_500_000.0), "1.5M");
        assert_eq!(pps_label(0.0), "0");
        assert_eq!(ns_label(1500.0), "1.5 µs");
        assert_eq!(ns_label(10_000_000.0), "10 ms");
        assert_eq!(ns_label(500.0), "500 ns");
    }

    #[test]
    fn a_missing_or_broken_font_names_the_fix() {
        // Registered under a family no chart uses, so other tests are not affected.
        let missing = register_family("test-only", Path::new("/nonexistent/font.ttf"));
        let error = missing.unwrap_err().to_string();
        assert!(error.contains("/nonexistent/font.ttf"), "{error}");
        assert!(
            error.contains("fonts-dejavu-core") && error.contains("--font"),
            "{error}"
        );
        let not_a_font = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let error = register_family("test-only", &not_a_font).unwrap_err();
        assert!(matches!(error, ChartError::FontInvalid { .. }), "{error}");
    }
}
