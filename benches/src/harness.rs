//! Runs scenarios: every case, every impl one after the other in this
//! process, then the report. Independent of the CLI: output goes to the
//! writers it is given, so tests can run it and read what it printed.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::error::BenchError;
use crate::measure::RunCtx;
use crate::pin::Pins;
use crate::report::{self, CheckResult, Failure, Record, ScenarioReport};
use crate::scenario::{Scenario, LIMIT};
use crate::scenarios;

/// How long each (case, impl) runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A few milliseconds, yielding instead of spinning: proves it works (tests).
    Smoke,
    /// `--quick`: well under a second per (case, impl).
    Quick,
    /// The default: five times the quick durations.
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

    /// Name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Smoke => "smoke",
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }
}

/// What to run and how to print it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    pub mode: Mode,
    /// JSON lines instead of tables.
    pub json: bool,
}

/// Runs the scenario named `only` (or all), printing results to `out` and
/// progress and notes to `progress`. A failing impl is reported and the run
/// goes on; the failures are in the returned reports.
pub fn run(
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
    // Read the core list once, from this (unpinned) thread, before any
    // benchmark thread is pinned.
    let pins = Pins::detect();
    let ctx = RunCtx {
        pins,
        warmup: opts.mode.warmup(),
        measure: opts.mode.measure(),
        yielding: opts.mode == Mode::Smoke || pins.shares_one_core(),
    };
    let mut reports = Vec::new();
    for scenario in selected {
        reports.push(run_scenario(scenario, &ctx, opts, out, progress)?);
    }
    Ok(reports)
}

fn run_scenario(
    scenario: &Scenario,
    ctx: &RunCtx,
    opts: &Options,
    out: &mut dyn Write,
    progress: &mut dyn Write,
) -> Result<ScenarioReport, BenchError> {
    let header = format!(
        "== {}: {} ({}: {} ms warm-up + {} ms measured per impl; {})",
        scenario.name,
        scenario.about,
        opts.mode.as_str(),
        ctx.warmup.as_millis(),
        ctx.measure.as_millis(),
        ctx.pins.describe()
    );
    if opts.json {
        writeln!(progress, "{header}")?;
    }
    let mut report = ScenarioReport { scenario: scenario.name, ..ScenarioReport::default() };
    for case in (scenario.cases)() {
        for note in &case.notes {
            writeln!(progress, "{}/{}: {note}", scenario.name, case.name)?;
        }
        let mut records = Vec::new();
        let mut failures = Vec::new();
        for imp in &case.impls {
            write!(progress, "{}/{}/{} ... ", scenario.name, case.name, imp.name)?;
            progress.flush()?;
            let started = Instant::now();
            match (imp.run)(ctx) {
                Ok(m) => {
                    writeln!(progress, "done in {:.2} s", started.elapsed().as_secs_f64())?;
                    let pinned = ctx.pins.is_pinned();
                    records.push(Record::new(scenario.name, case.name, imp.name, case.metric, &m, pinned));
                }
                Err(e) => {
                    writeln!(progress, "FAILED: {e}")?;
                    let error = e.to_string();
                    failures.push(Failure { scenario: scenario.name, case: case.name, imp: imp.name, error });
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
        report::write_text(out, &header, &report)?;
    }
    out.flush()?;
    Ok(report)
}
