//! The report directory `ringflow bench` leaves behind (every scenario when
//! none is named, or `--out DIR`): `report.txt` (the tables, checks and
//! summary exactly as printed, headed by what was measured where: commit,
//! kernel, CPU, mode), `report.jsonl` (a `{"meta":…}` line of the same,
//! then the JSON lines `--json` prints), `plots.svg` (every case drawn) and
//! `hdr/` (one interval log per measured (case, impl)). The directory is created before anything runs,
//! so a path that cannot be written fails at once, not after the run.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::BenchError;
use crate::harness::{self, Mode, Options};
use crate::meta::RunMeta;
use crate::report::{self, ScenarioReport};

/// Where `ringflow bench` writes its report when not told (`--out`).
pub const DEFAULT_DIR: &str = "ringflow-report";
/// The text report, as printed.
pub const TEXT_FILE: &str = "report.txt";
/// The JSON lines.
pub const JSON_FILE: &str = "report.jsonl";
/// The plot of every case.
pub const PLOT_FILE: &str = "plots.svg";
/// The interval logs.
pub const HDR_DIR: &str = "hdr";

/// Runs the scenario named `only` (or all) like [`harness::run`], printing
/// tables (or JSON lines with `json`) to `out`, then writes the report
/// directory `dir`. Files of an earlier report there are overwritten.
pub fn run_into_dir(
    only: Option<&str>,
    mode: Mode,
    json: bool,
    dir: &Path,
    out: &mut dyn Write,
    progress: &mut dyn Write,
) -> Result<Vec<ScenarioReport>, BenchError> {
    let hdr = dir.join(HDR_DIR);
    fs::create_dir_all(&hdr).map_err(|source| BenchError::Output { path: hdr.clone(), source })?;
    let opts = Options { mode, json, hdr_dir: Some(hdr), plot: Some(dir.join(PLOT_FILE)) };
    let meta = RunMeta::detect(mode);
    if !json {
        // What report.txt holds is what was printed, its head included.
        writeln!(out, "{}", meta.line()).map_err(BenchError::from)?;
    }
    let reports = harness::run_scenarios(only, &opts, out, progress)?;
    write_file(&dir.join(TEXT_FILE), &meta.line(), &reports, report::write_text)?;
    write_file(&dir.join(JSON_FILE), &meta.to_json(), &reports, report::write_json)?;
    harness::write_files(&reports, &opts, progress)?;
    Ok(reports)
}

/// Writes `head` as the first line of `path`, then every report with `write`.
fn write_file(
    path: &Path,
    head: &str,
    reports: &[ScenarioReport],
    write: fn(&mut dyn Write, &ScenarioReport) -> std::io::Result<()>,
) -> Result<(), BenchError> {
    let output = |source| BenchError::Output { path: path.to_path_buf(), source };
    let mut file = BufWriter::new(fs::File::create(path).map_err(output)?);
    writeln!(file, "{head}").map_err(output)?;
    for r in reports {
        write(&mut file, r).map_err(output)?;
    }
    file.flush().map_err(output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenarios::smoke;

    /// The report directory holds the text exactly as printed, one JSON
    /// line per record and check, one interval log per (case, impl) and
    /// the plot.
    #[test]
    fn a_report_directory_holds_what_was_printed() {
        let tmp = smoke::fresh_dir("report-dir");
        let dir = tmp.path().join("report");
        let mut out = Vec::new();
        let reports =
            run_into_dir(Some("ring"), Mode::Smoke, false, &dir, &mut out, &mut std::io::sink()).expect("run");
        let report = &reports[0];
        let printed = String::from_utf8(out).expect("utf-8");
        assert!(printed.contains("\nsummary:\n"), "{printed}");
        assert_eq!(fs::read_to_string(dir.join(TEXT_FILE)).expect("report.txt"), printed);
        // Headed by what was measured where.
        let meta = RunMeta::detect(Mode::Smoke);
        assert_eq!(printed.lines().next(), Some(meta.line().as_str()));
        assert!(printed.starts_with("# ringflow bench, smoke mode: commit "), "{printed}");
        // Each case's summary line says what its limit is and what its latency measures.
        for (case, _) in &report.cases {
            let line = printed.lines().find(|l| l.starts_with(&format!("{case}: "))).expect("a summary line");
            assert!(line.contains(" [limit = ") && line.contains("; latency = "), "{line}");
        }
        let jsonl = fs::read_to_string(dir.join(JSON_FILE)).expect("report.jsonl");
        let expected: Vec<String> = std::iter::once(meta.to_json())
            .chain(report.records.iter().map(|r| r.to_json()))
            .chain(report.checks.iter().map(|c| c.to_json()))
            .collect();
        assert_eq!(jsonl.lines().collect::<Vec<_>>(), expected);
        assert!(jsonl.lines().skip(1).all(|l| l.contains("\"latency_is\":") || l.starts_with("{\"check\"")));
        assert_eq!(fs::read_dir(dir.join(HDR_DIR)).expect("hdr/").count(), report.records.len());
        let svg = fs::read_to_string(dir.join(PLOT_FILE)).expect("plots.svg");
        roxmltree::Document::parse(&svg).expect("well-formed SVG");
    }
}
