//! Runs scenarios: every case, every impl one after the other in this
//! process, then the report, then the files asked for (interval logs, the
//! plot) once nothing is being measured any more. Independent of the CLI:
//! output goes to the writers it is given, so tests can run it and read
//! what it printed.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use crate::error::BenchError;
use crate::hdr_log;
use crate::measure::{Measurement, RunCtx};
use crate::pin::Pins;
use crate::plot;
use crate::report::{self, CaseHistogram, CheckResult, Failure, Record, ScenarioReport};
use crate::scenario::{Case, Scenario, LIMIT};
use crate::scenarios;

/// How long each (case, impl) runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// A few milliseconds, yielding instead of spinning: proves it works (tests).
    Smoke,
    /// `--quick`: well under a second per (case, impl).
    Quick,
    /// Five times the quick durations (the default of `ringflow bench <scenario>`).
    #[default]
    Full,
}

impl Mode {
    /// Warm-up before each measurement (excluded from every figure).
    pub fn warmup(self) -> Duration {
        match self {
            Mode::Smoke => Duration::from_millis(2),
            Mode::Quick => Duration::from_millis(150),
            Mode::Full => Duration::from_millis(750),
        }
    }

    /// Measured time of each (case, impl).
    pub fn measure(self) -> Duration {
        match self {
            Mode::Smoke => Duration::from_millis(8),
            Mode::Quick => Duration::from_millis(500),
            Mode::Full => Duration::from_millis(2500),
        }
    }

    /// Rounds each case runs in: every impl of the case once per round, so
    /// the impls compared share the machine's moods (this VM flips between
    /// a fast and a slow state every few seconds) instead of each meeting
    /// its own. A round runs a share of the warm-up and of the measured
    /// time; the rounds' samples are merged.
    pub fn rounds(self) -> u32 {
        match self {
            Mode::Smoke => 1,
            Mode::Quick | Mode::Full => 3,
        }
    }

    /// Name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Smoke => "smoke",
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }
}

/// What to run, how to print it and which files to write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub mode: Mode,
    /// JSON lines instead of tables.
    pub json: bool,
    /// Write each measured (case, impl) histogram as an HdrHistogram
    /// interval log into this directory (created if missing).
    pub hdr_dir: Option<PathBuf>,
    /// Draw every measured case into this SVG file.
    pub plot: Option<PathBuf>,
}

/// Runs the scenario named `only` (or all), printing results to `out` and
/// progress and notes to `progress`, then writes the interval logs and the
/// plot `opts` asks for. A failing impl is reported and the run goes on;
/// the failures are in the returned reports.
pub fn run(
    only: Option<&str>,
    opts: &Options,
    out: &mut dyn Write,
    progress: &mut dyn Write,
) -> Result<Vec<ScenarioReport>, BenchError> {
    let reports = run_scenarios(only, opts, out, progress)?;
    write_files(&reports, opts, progress)?;
    Ok(reports)
}

/// Writes the interval logs and the plot `opts` asks for, saying where on
/// `progress`.
pub(crate) fn write_files(
    reports: &[ScenarioReport],
    opts: &Options,
    progress: &mut dyn Write,
) -> Result<(), BenchError> {
    if let Some(dir) = &opts.hdr_dir {
        let mut written = 0;
        for report in reports {
            written += hdr_log::write_logs(dir, report)?.len();
        }
        writeln!(progress, "wrote {written} interval logs (<scenario>.<case>.<impl>.hlog) to {}", dir.display())?;
    }
    if let Some(path) = &opts.plot {
        plot::write_svg(path, reports)?;
        writeln!(progress, "wrote the plot to {}", path.display())?;
    }
    Ok(())
}

/// The scenarios of one run with their cases, built before anything runs
/// so the progress line can count the (case, impl)s ahead.
struct Planned<'a> {
    scenario: &'a Scenario,
    cases: Vec<Case>,
}

/// Where the run is, for the progress line `[k/N] scenario/case/impl`.
struct Progress<'a> {
    out: &'a mut dyn Write,
    done: usize,
    total: usize,
    started: Instant,
}

/// Runs the scenarios and prints their results; writes no files.
pub(crate) fn run_scenarios(
    only: Option<&str>,
    opts: &Options,
    out: &mut dyn Write,
    progress: &mut dyn Write,
) -> Result<Vec<ScenarioReport>, BenchError> {
    let all = scenarios::all();
    let selected: Vec<&Scenario> = match only {
        None => all.iter().collect(),
        Some(name) => {
            let found = all.iter().find(|s| s.name == name);
            vec![found.ok_or_else(|| BenchError::UnknownScenario {
                name: name.to_string(),
                known: all.iter().map(|s| s.name).collect(),
            })?]
        }
    };
    let planned: Vec<Planned> = selected.into_iter().map(|s| Planned { scenario: s, cases: (s.cases)() }).collect();
    let rounds = opts.mode.rounds();
    let total = planned.iter().flat_map(|p| &p.cases).map(|c| c.impls.len()).sum::<usize>() * rounds as usize;
    // Read the core list once, from this (unpinned) thread, before any
    // benchmark thread is pinned.
    let pins = Pins::detect();
    let ctx = RunCtx {
        pins,
        warmup: opts.mode.warmup() / rounds,
        measure: opts.mode.measure() / rounds,
        yielding: opts.mode == Mode::Smoke || pins.shares_one_core(),
    };
    let mut progress = Progress { out: progress, done: 0, total, started: Instant::now() };
    let mut reports = Vec::new();
    for p in planned {
        reports.push(run_scenario(p.scenario, p.cases, &ctx, opts, out, &mut progress)?);
    }
    Ok(reports)
}

/// One impl's rounds of a case, merged.
struct ImplRun {
    /// Samples and messages of every round; `elapsed` sums their windows.
    m: Measurement,
    /// When its first round began, and where that round's measured window
    /// began in it (what an interval log is timed from).
    run_start: SystemTime,
    window_offset: Duration,
}

impl ImplRun {
    fn merge(
        so_far: Option<ImplRun>,
        m: Measurement,
        run_start: SystemTime,
        took: Duration,
    ) -> Result<ImplRun, BenchError> {
        let Some(mut run) = so_far else {
            return Ok(ImplRun { window_offset: took.saturating_sub(m.elapsed), m, run_start });
        };
        run.m.hist.add(&m.hist).map_err(|e| BenchError::Histogram(format!("merging the rounds' histograms: {e:?}")))?;
        run.m.msgs += m.msgs;
        run.m.elapsed += m.elapsed;
        run.m.delivered = match (run.m.delivered, m.delivered) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        Ok(run)
    }

    /// [`merge`](Self::merge) of each of an impl's measurements into its
    /// own run (none so far: the first round).
    fn merge_all(
        so_far: Vec<ImplRun>,
        ms: Vec<Measurement>,
        run_start: SystemTime,
        took: Duration,
    ) -> Result<Vec<ImplRun>, BenchError> {
        let mut so_far = so_far.into_iter();
        ms.into_iter().map(|m| ImplRun::merge(so_far.next(), m, run_start, took)).collect()
    }
}

fn run_scenario(
    scenario: &Scenario,
    cases: Vec<Case>,
    ctx: &RunCtx,
    opts: &Options,
    out: &mut dyn Write,
    progress: &mut Progress,
) -> Result<ScenarioReport, BenchError> {
    let rounds = opts.mode.rounds();
    let header = format!(
        "== {}: {} ({}: {} ms warm-up + {} ms measured per impl{}; {})",
        scenario.name,
        scenario.about,
        opts.mode.as_str(),
        ctx.warmup.as_millis(),
        ctx.measure.as_millis(),
        if rounds > 1 { format!(", in {rounds} rounds that take turns among the impls") } else { String::new() },
        ctx.pins.describe()
    );
    if opts.json {
        writeln!(progress.out, "{header}")?;
    }
    let mut report = ScenarioReport { scenario: scenario.name, header, ..ScenarioReport::default() };
    for case in cases {
        for note in &case.notes {
            writeln!(progress.out, "{}/{}: {note}", scenario.name, case.name)?;
        }
        // Per impl: the merged measurements so far (one per name), or why
        // it failed.
        let mut runs: Vec<Result<Vec<ImplRun>, String>> = case.impls.iter().map(|_| Ok(Vec::new())).collect();
        for round in 1..=rounds {
            for (imp, run) in case.impls.iter().zip(runs.iter_mut()) {
                let Ok(merged) = run else { continue };
                progress.done += 1;
                // One line per (case, impl, round), finished when it is: reads
                // the same on a terminal and in a CI log (no carriage returns).
                let of = if rounds > 1 { format!(" (round {round}/{rounds})") } else { String::new() };
                write!(
                    progress.out,
                    "[{}/{}] {}/{}/{}{of} ... ",
                    progress.done,
                    progress.total,
                    scenario.name,
                    case.name,
                    imp.label()
                )?;
                progress.out.flush()?;
                let run_start = SystemTime::now();
                let started = Instant::now();
                let result = imp.measure(ctx);
                let took = started.elapsed();
                let run_secs = progress.started.elapsed().as_secs_f64();
                match result.and_then(|m| ImplRun::merge_all(std::mem::take(merged), m, run_start, took)) {
                    Ok(next) => {
                        writeln!(progress.out, "done in {:.2} s ({run_secs:.1} s into the run)", took.as_secs_f64())?;
                        *merged = next;
                    }
                    Err(e) => {
                        writeln!(progress.out, "FAILED after {:.2} s: {e}", took.as_secs_f64())?;
                        *run = Err(e.to_string());
                    }
                }
            }
        }
        let mut records = Vec::new();
        let mut failures = Vec::new();
        for (imp, run) in case.impls.iter().zip(runs) {
            match run {
                Ok(merged) => {
                    for (name, r) in imp.names().zip(merged) {
                        let pinned = ctx.pins.is_pinned();
                        records.push(Record::new(scenario.name, case.name, name, case.metric, &r.m, pinned));
                        report.histograms.push(CaseHistogram {
                            case: case.name,
                            imp: name,
                            hist: r.m.hist,
                            run_start: r.run_start,
                            window_offset: r.window_offset,
                            window: r.m.elapsed,
                        });
                    }
                }
                Err(error) => {
                    for name in imp.names() {
                        failures.push(Failure {
                            scenario: scenario.name,
                            case: case.name,
                            imp: name,
                            error: error.clone(),
                        });
                    }
                }
            }
        }
        let reference = case.reference();
        report::set_ratios(&mut records, reference);
        if opts.json {
            report::write_json_case(out, &records, &failures)?;
            out.flush()?;
        }
        report.cases.push((case.name, case.metric));
        report.limits.push((case.name, crate::summary::limit_of(case.about, case.metric, reference)));
        if reference != LIMIT {
            report.references.push((case.name, reference));
        }
        report.records.extend(records);
        report.failures.extend(failures);
    }
    report.checks = scenario.checks.iter().map(|spec| CheckResult::evaluate(*spec, &report.records)).collect();
    if opts.json {
        for c in &report.checks {
            writeln!(out, "{}", c.to_json())?;
        }
    } else {
        report::write_text(out, &report)?;
    }
    out.flush()?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::hdr_log;
    use crate::scenarios::smoke;

    /// A smoke run asked for interval logs and a plot writes one log per
    /// measured (case, impl), holding that impl's samples, and one SVG
    /// naming every impl.
    #[test]
    fn a_smoke_run_writes_interval_logs_and_the_plot() {
        let tmp = smoke::fresh_dir("harness-files");
        let dir = tmp.path();
        let opts = Options {
            mode: Mode::Smoke,
            hdr_dir: Some(dir.join("hdr")),
            plot: Some(dir.join("plots/ring.svg")),
            ..Options::default()
        };
        let (report, _, _) = smoke::run_scenario_with("ring", &opts);
        let logs = fs::read_dir(dir.join("hdr")).expect("hdr dir").count();
        assert_eq!(logs, report.records.len());
        for r in &report.records {
            let path = dir.join("hdr").join(hdr_log::file_name("ring", r.case, r.imp));
            let back = hdr_log::tests::read_back(&fs::read(&path).expect("the log of a measured impl"));
            assert_eq!(back.tag, Some(hdr_log::tag("ring", r.case, r.imp)));
            assert_eq!(back.hist.len(), r.n, "{}", path.display());
            assert_eq!(back.hist.value_at_quantile(0.5), r.p50_ns);
        }
        let svg = fs::read_to_string(dir.join("plots/ring.svg")).expect("the plot");
        let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        let texts: Vec<&str> =
            doc.descendants().filter(|n| n.has_tag_name("text")).filter_map(|n| n.text()).map(str::trim).collect();
        for r in &report.records {
            assert!(texts.contains(&r.imp), "{} not named in the plot", r.imp);
        }
    }

    /// One progress line per (case, impl), counted against the run's total;
    /// impls that take turns in one run share a line naming them all.
    #[test]
    fn progress_lines_count_every_case_and_impl() {
        let opts = Options { mode: Mode::Smoke, ..Options::default() };
        let mut progress = Vec::new();
        let reports = run(Some("ring"), &opts, &mut std::io::sink(), &mut progress).expect("run");
        let scenario = scenarios::all().into_iter().find(|s| s.name == "ring").expect("registered");
        let labels: Vec<(&str, String)> = (scenario.cases)()
            .iter()
            .flat_map(|c| c.impls.iter().map(|i| (c.name, i.label())).collect::<Vec<_>>())
            .collect();
        assert!(labels.iter().any(|(_, l)| l.contains('+')), "ring's ping-pong impls take turns: {labels:?}");
        let total = labels.len();
        let progress = String::from_utf8(progress).expect("utf-8");
        let lines: Vec<&str> = progress.lines().filter(|l| l.starts_with('[')).collect();
        assert_eq!(lines.len(), total, "{progress}");
        for (k, (line, (case, label))) in lines.iter().zip(&labels).enumerate() {
            let start = format!("[{}/{total}] ring/{case}/{label} ... done in ", k + 1);
            assert!(line.starts_with(&start), "{line:?} should start {start:?}");
            assert!(line.ends_with(" s into the run)"), "{line}");
        }
        // Every name of every impl has its record.
        assert_eq!(reports[0].records.len(), labels.iter().map(|(_, l)| l.split('+').count()).sum::<usize>());
    }

    /// The JSON of a whole report, as `report.jsonl` holds it, is what
    /// `--json` streamed case by case.
    #[test]
    fn the_json_of_a_report_is_what_was_streamed() {
        let opts = Options { mode: Mode::Smoke, json: true, ..Options::default() };
        let mut out = Vec::new();
        let reports = run(Some("ring"), &opts, &mut out, &mut std::io::sink()).expect("run");
        let mut whole = Vec::new();
        report::write_json(&mut whole, &reports[0]).expect("write");
        assert_eq!(String::from_utf8(whole).expect("utf-8"), String::from_utf8(out).expect("utf-8"));
    }
}
