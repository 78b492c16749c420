//! Turning measurements into what `ringflow bench` prints: one record per
//! measured (case, impl), as an aligned table or as JSON lines, the
//! scenario's acceptance checks and the summary in words (`summary.rs`).
//! Every figure printed comes from a record of this run; nothing here
//! estimates or hard-codes.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;

use ringflow_core::json::string as json_str;

use crate::measure::Measurement;
use crate::scenario::{CheckSpec, Metric, Stat, Target, LIMIT};
use crate::summary;

/// The figures of one measured (case, impl).
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub scenario: &'static str,
    pub case: &'static str,
    pub imp: &'static str,
    pub metric: Metric,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
    /// Latency samples.
    pub n: u64,
    /// Messages (round trips for ping-pong) in the measured window.
    pub msgs: u64,
    pub msgs_per_sec: f64,
    /// Fan-out cases: what each subscriber received per second, on average
    /// (`msgs_per_sec` is then the publisher's rate); none elsewhere.
    pub delivered_per_sec: Option<f64>,
    /// p50 / limit p50 (latency) or msgs/s / limit msgs/s (throughput);
    /// none when the limit was not measured. In a case without a limit
    /// impl, against the case's reference ([`crate::Case::reference`]).
    pub ratio_to_limit: Option<f64>,
    pub pinned: bool,
}

impl Record {
    /// A record without its ratio (set once the case's limit is known).
    pub fn new(
        scenario: &'static str,
        case: &'static str,
        imp: &'static str,
        metric: Metric,
        m: &Measurement,
        pinned: bool,
    ) -> Self {
        Record {
            scenario,
            case,
            imp,
            metric,
            p50_ns: m.hist.value_at_quantile(0.5),
            p99_ns: m.hist.value_at_quantile(0.99),
            p999_ns: m.hist.value_at_quantile(0.999),
            max_ns: m.hist.max(),
            n: m.hist.len(),
            msgs: m.msgs,
            msgs_per_sec: m.msgs_per_sec(),
            delivered_per_sec: m.delivered_per_sec(),
            ratio_to_limit: None,
            pinned,
        }
    }

    /// A record of scenario "t" whose percentiles are all `p50`.
    #[cfg(test)]
    pub(crate) fn for_tests(case: &'static str, imp: &'static str, metric: Metric, p50: u64, rate: f64) -> Record {
        Record {
            scenario: "t",
            case,
            imp,
            metric,
            p50_ns: p50,
            p99_ns: p50,
            p999_ns: p50,
            max_ns: p50,
            n: 1,
            msgs: 1,
            msgs_per_sec: rate,
            delivered_per_sec: None,
            ratio_to_limit: None,
            pinned: true,
        }
    }

    /// The figure a ratio or a check uses.
    pub fn stat(&self, stat: Stat) -> f64 {
        match stat {
            Stat::P50 => self.p50_ns as f64,
            Stat::MsgsPerSec => self.msgs_per_sec,
        }
    }

    /// The case's headline figure for this record.
    pub(crate) fn headline(&self) -> f64 {
        self.stat(headline_stat(self.metric))
    }

    /// One JSON object (no trailing newline). `delivered_per_sub_per_sec`
    /// only where there is one (fan-out cases); `latency_is` says whether
    /// the latency figures are of a round trip or one way.
    pub fn to_json(&self) -> String {
        let delivered = self
            .delivered_per_sec
            .map_or_else(String::new, |d| format!(",\"delivered_per_sub_per_sec\":{}", json_num(Some(d))));
        format!(
            "{{\"scenario\":{},\"case\":{},\"impl\":{},\"metric\":{},\"p50_ns\":{},\"p99_ns\":{},\"p999_ns\":{},\
             \"max_ns\":{},\"n\":{},\"msgs\":{},\"msgs_per_sec\":{}{delivered},\"ratio_to_limit\":{},\"pinned\":{},\
             \"latency_is\":{}}}",
            json_str(self.scenario),
            json_str(self.case),
            json_str(self.imp),
            json_str(self.metric.as_str()),
            self.p50_ns,
            self.p99_ns,
            self.p999_ns,
            self.max_ns,
            self.n,
            self.msgs,
            json_num(Some(self.msgs_per_sec)),
            json_num(self.ratio_to_limit),
            self.pinned,
            json_str(summary::latency_is(self.metric)),
        )
    }
}

pub(crate) fn headline_stat(metric: Metric) -> Stat {
    match metric {
        Metric::Latency => Stat::P50,
        Metric::Throughput => Stat::MsgsPerSec,
    }
}

/// Sets every record's ratio to the case's reference record (its limit,
/// unless the case has none; see [`crate::Case::reference`]).
pub fn set_ratios(records: &mut [Record], reference: &str) {
    let limit = records.iter().find(|r| r.imp == reference).map(Record::headline);
    for r in records.iter_mut() {
        r.ratio_to_limit = limit.filter(|l| *l > 0.0).map(|l| r.headline() / l);
    }
}

/// A (case, impl) that could not be measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub scenario: &'static str,
    pub case: &'static str,
    pub imp: &'static str,
    pub error: String,
}

impl Failure {
    /// One JSON object (no trailing newline).
    pub fn to_json(&self) -> String {
        format!(
            "{{\"scenario\":{},\"case\":{},\"impl\":{},\"error\":{}}}",
            json_str(self.scenario),
            json_str(self.case),
            json_str(self.imp),
            json_str(&self.error)
        )
    }
}

/// An acceptance check evaluated on this run.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckResult {
    pub spec: CheckSpec,
    /// None when a side of the ratio was not measured.
    pub value: Option<f64>,
}

impl CheckResult {
    /// Evaluates `spec` on the records of one scenario run.
    pub fn evaluate(spec: CheckSpec, records: &[Record]) -> Self {
        let find =
            |case: &str, imp: &str| records.iter().find(|r| r.case == case && r.imp == imp).map(|r| r.stat(spec.stat));
        let (den_case, den_imp) = spec.den_case_impl();
        let value = match (find(spec.case, spec.num), find(den_case, den_imp)) {
            (Some(n), Some(d)) if d > 0.0 => Some(n / d),
            _ => None,
        };
        CheckResult { spec, value }
    }

    /// "ringflow p50 / limit p50".
    pub fn expr(&self) -> String {
        let s = self.spec.stat.as_str();
        format!("{} {s} / {} {s}", self.spec.num, self.spec.den)
    }

    /// PASS, FAIL, or SKIP when not measured.
    pub fn verdict(&self) -> &'static str {
        match self.value {
            Some(v) if self.spec.target.met_by(v) => "PASS",
            Some(_) => "FAIL",
            None => "SKIP",
        }
    }

    /// The text line.
    pub fn line(&self) -> String {
        let value = self.value.map_or_else(|| "n/a (not measured)".to_string(), |v| format!("{v:.3}"));
        format!("check {}: {} = {value} (target {}) {}", self.spec.case, self.expr(), self.spec.target, self.verdict())
    }

    /// One JSON object (no trailing newline).
    pub fn to_json(&self) -> String {
        let (op, bound) = match self.spec.target {
            Target::AtMost(t) => ("<=", t),
            Target::AtLeast(t) => (">=", t),
        };
        format!(
            "{{\"check\":{},\"expr\":{},\"value\":{},\"op\":{},\"target\":{},\"verdict\":{}}}",
            json_str(self.spec.case),
            json_str(&self.expr()),
            json_num(self.value),
            json_str(op),
            json_num(Some(bound)),
            json_str(self.verdict()),
        )
    }
}

/// The latency histogram of one measured (case, impl), kept once its
/// record is made so interval logs and plots see every sample, not only
/// the percentiles of the record. Never printed in the tables or JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseHistogram {
    pub case: &'static str,
    pub imp: &'static str,
    /// Latency samples in ns, as measured (see [`Measurement::hist`]).
    pub hist: Histogram<u64>,
    /// Wall-clock time the impl's run began (set-up and warm-up included).
    pub run_start: SystemTime,
    /// Where the measured window began within that run. Impls report only
    /// the window's length, so this is the run's length less the window:
    /// late by the run's tear-down (joining its threads), never early.
    pub window_offset: Duration,
    /// Length of the measured window.
    pub window: Duration,
}

/// Everything one scenario run produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScenarioReport {
    pub scenario: &'static str,
    /// The line that heads the scenario's table (mode, durations, cores).
    pub header: String,
    pub records: Vec<Record>,
    /// The histogram behind each record, in the same order.
    pub histograms: Vec<CaseHistogram>,
    pub failures: Vec<Failure>,
    pub checks: Vec<CheckResult>,
    /// Case names with their metric, in run order.
    pub cases: Vec<(&'static str, Metric)>,
    /// (case, reference impl) of each case whose ratios are not against an
    /// impl named [`LIMIT`] (see [`crate::Case::reference`]).
    pub references: Vec<(&'static str, &'static str)>,
    /// (case, what its ratios are against, in words: [`summary::limit_of`]).
    pub limits: Vec<(&'static str, String)>,
}

impl ScenarioReport {
    /// The impl `case`'s ratios are against.
    pub fn reference(&self, case: &str) -> &'static str {
        self.references.iter().find(|(c, _)| *c == case).map_or(LIMIT, |(_, r)| r)
    }

    /// What `case`'s ratios are against, in words ("limit" when unknown).
    pub fn limit(&self, case: &str) -> &str {
        self.limits.iter().find(|(c, _)| *c == case).map_or(LIMIT, |(_, l)| l.as_str())
    }

    /// The histogram of `imp` in `case`, if it was measured.
    pub fn histogram(&self, case: &str, imp: &str) -> Option<&CaseHistogram> {
        self.histograms.iter().find(|h| h.case == case && h.imp == imp)
    }
}

/// Writes the scenario's header, the aligned table, the check lines and
/// the summary in words: what `ringflow bench` prints and `report.txt` holds.
pub fn write_text(out: &mut dyn Write, report: &ScenarioReport) -> io::Result<()> {
    writeln!(out, "{}", report.header)?;
    // The fan-out column only in a report that has fan-out records.
    let fanout = report.records.iter().any(|r| r.delivered_per_sec.is_some());
    let mut head = vec!["case", "impl", "p50_ns", "p99_ns", "p999_ns", "max_ns", "n", "msgs_per_sec"];
    if fanout {
        head.push("delivered_per_sub");
    }
    head.push("ratio_to_limit");
    let rows: Vec<Vec<String>> = report
        .records
        .iter()
        .map(|r| {
            let mut row = vec![
                r.case.to_string(),
                r.imp.to_string(),
                r.p50_ns.to_string(),
                r.p99_ns.to_string(),
                r.p999_ns.to_string(),
                r.max_ns.to_string(),
                r.n.to_string(),
                si(r.msgs_per_sec),
            ];
            if fanout {
                row.push(r.delivered_per_sec.map_or_else(|| "-".to_string(), si));
            }
            row.push(r.ratio_to_limit.map_or_else(|| "-".to_string(), |v| format!("{v:.2}")));
            row
        })
        .collect();
    let mut width: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &[&str]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&width).enumerate() {
            // Names left-aligned, figures right-aligned.
            let _ = if i < 2 { write!(s, "{cell:<w$}  ") } else { write!(s, "{cell:>w$}  ") };
        }
        s.trim_end().to_string()
    };
    writeln!(out, "{}", line(&head))?;
    for row in &rows {
        writeln!(out, "{}", line(&row.iter().map(String::as_str).collect::<Vec<_>>()))?;
    }
    if fanout {
        writeln!(
            out,
            "delivered_per_sub: fan-out cases, what each subscriber received per second on average \
             (msgs_per_sec is then the publisher's rate)"
        )?;
    }
    writeln!(
        out,
        "ratio_to_limit: latency cases p50 / limit p50 (lower is better); \
         stream cases msgs/s / limit msgs/s (higher is better)"
    )?;
    for (case, reference) in &report.references {
        writeln!(out, "ratio_to_limit of {case}: against {reference} (this case measures no physical limit)")?;
    }
    for f in &report.failures {
        writeln!(out, "FAILED {}/{}/{}: {}", f.scenario, f.case, f.imp, f.error)?;
    }
    for c in &report.checks {
        writeln!(out, "{}", c.line())?;
    }
    writeln!(out, "summary:")?;
    for (case, metric) in &report.cases {
        let line = summary::case_line(case, *metric, report.reference(case), report.limit(case), &report.records);
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Writes one JSON line per record and failure of a case.
pub fn write_json_case(out: &mut dyn Write, records: &[Record], failures: &[Failure]) -> io::Result<()> {
    for r in records {
        writeln!(out, "{}", r.to_json())?;
    }
    for f in failures {
        writeln!(out, "{}", f.to_json())?;
    }
    Ok(())
}

/// Writes a whole scenario's JSON lines as `--json` streams them while it
/// runs: each case's records and failures, then the checks.
pub fn write_json(out: &mut dyn Write, report: &ScenarioReport) -> io::Result<()> {
    for (case, _) in &report.cases {
        let records: Vec<Record> = report.records.iter().filter(|r| r.case == *case).cloned().collect();
        let failures: Vec<Failure> = report.failures.iter().filter(|f| f.case == *case).cloned().collect();
        write_json_case(out, &records, &failures)?;
    }
    for c in &report.checks {
        writeln!(out, "{}", c.to_json())?;
    }
    Ok(())
}

/// 12345678.0 -> "12.35M".
pub fn si(x: f64) -> String {
    match x {
        x if x >= 1e9 => format!("{:.2}G", x / 1e9),
        x if x >= 1e6 => format!("{:.2}M", x / 1e6),
        x if x >= 1e3 => format!("{:.2}k", x / 1e3),
        x => format!("{x:.0}"),
    }
}

fn json_num(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.4}"),
        _ => "null".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(case: &'static str, imp: &'static str, metric: Metric, p50: u64, rate: f64) -> Record {
        Record::for_tests(case, imp, metric, p50, rate)
    }

    /// A case without a limit impl: ratios go against its reference.
    #[test]
    fn a_reference_stands_in_for_a_missing_limit() {
        let mut recs = vec![rec("a", "floor", Metric::Latency, 200, 0.0), rec("a", "x", Metric::Latency, 300, 0.0)];
        set_ratios(&mut recs, "floor");
        assert_eq!(recs[1].ratio_to_limit, Some(1.5));
        let report = ScenarioReport { references: vec![("a", "floor")], ..ScenarioReport::default() };
        assert_eq!((report.reference("a"), report.reference("b")), ("floor", LIMIT));
    }

    #[test]
    fn ratios_follow_the_metric() {
        let mut lat = vec![rec("a", LIMIT, Metric::Latency, 100, 9.0), rec("a", "x", Metric::Latency, 150, 1.0)];
        set_ratios(&mut lat, LIMIT);
        assert_eq!(lat[1].ratio_to_limit, Some(1.5));
        let mut thr = vec![rec("b", LIMIT, Metric::Throughput, 1, 200.0), rec("b", "x", Metric::Throughput, 9, 50.0)];
        set_ratios(&mut thr, LIMIT);
        assert_eq!(thr[1].ratio_to_limit, Some(0.25));
        let mut none = vec![rec("c", "x", Metric::Latency, 1, 1.0)];
        set_ratios(&mut none, LIMIT);
        assert_eq!(none[0].ratio_to_limit, None);
    }

    #[test]
    fn checks_pass_fail_and_skip() {
        let recs = [rec("a", LIMIT, Metric::Latency, 100, 0.0), rec("a", "x", Metric::Latency, 140, 0.0)];
        let spec = CheckSpec { case: "a", num: "x", den: LIMIT, stat: Stat::P50, target: Target::AtMost(1.5) };
        assert_eq!(CheckResult::evaluate(spec, &recs).verdict(), "PASS");
        let strict = CheckSpec { target: Target::AtMost(1.2), ..spec };
        assert_eq!(CheckResult::evaluate(strict, &recs).verdict(), "FAIL");
        let missing = CheckSpec { den: "absent", ..spec };
        let c = CheckResult::evaluate(missing, &recs);
        assert_eq!(c.verdict(), "SKIP");
        assert!(c.to_json().contains("\"value\":null"));
    }

    #[test]
    fn checks_across_cases() {
        let recs = [rec("big", "x", Metric::Throughput, 1, 30.0), rec("small", "x", Metric::Throughput, 1, 100.0)];
        let spec =
            CheckSpec { case: "big", num: "x", den: "small/x", stat: Stat::MsgsPerSec, target: Target::AtLeast(0.25) };
        let c = CheckResult::evaluate(spec, &recs);
        assert_eq!(c.value, Some(0.3));
        assert_eq!(c.verdict(), "PASS");
        assert_eq!(c.expr(), "x msgs/s / small/x msgs/s");
        let missing = CheckSpec { num: "absent", ..spec };
        assert_eq!(CheckResult::evaluate(missing, &recs).verdict(), "SKIP");
        let missing = CheckSpec { den: "small/absent", ..spec };
        assert_eq!(CheckResult::evaluate(missing, &recs).verdict(), "SKIP");
    }
}
