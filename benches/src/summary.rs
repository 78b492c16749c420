//! The summary in words that ends a scenario's text report: for each case,
//! which impl won and by what factor over the runner-up, how far behind the
//! winner ringflow is when it did not win, and ringflow against the case's
//! limit. Built from the records of this run only; nothing is estimated.

use crate::report::{si, Record};
use crate::scenario::{Metric, LIMIT};

/// The impl the summary follows when it does not win.
pub const RINGFLOW: &str = "ringflow";

/// One sentence for `case`: the winner among the impls other than its
/// limit (or its `reference` when it has none), its factor over the
/// runner-up and over ringflow when ringflow is further behind, then the
/// reference's figure with ringflow's ratio to it.
pub fn case_line(case: &str, metric: Metric, reference: &str, records: &[Record]) -> String {
    let in_case = |imp: &str| records.iter().find(|r| r.case == case && r.imp == imp);
    let mut rivals: Vec<&Record> = records.iter().filter(|r| r.case == case && r.imp != reference).collect();
    rivals.sort_by(|a, b| match metric {
        Metric::Latency => a.headline().total_cmp(&b.headline()),
        Metric::Throughput => b.headline().total_cmp(&a.headline()),
    });
    let show = |r: &Record| match metric {
        Metric::Latency => format!("p50 {} ns", r.p50_ns),
        Metric::Throughput => format!("{} msgs/s", si(r.msgs_per_sec)),
    };
    // How many times better `win` is than `other`, in the case's metric.
    let factor = |win: &Record, other: &Record| match metric {
        Metric::Latency => other.headline() / win.headline(),
        Metric::Throughput => win.headline() / other.headline(),
    };
    let word = match metric {
        Metric::Latency => "lower p50 than",
        Metric::Throughput => "the msgs/s of",
    };
    let against_reference = match (in_case(reference), in_case(RINGFLOW)) {
        (None, _) => format!("{reference} not measured"),
        (Some(r), Some(ours)) if reference != RINGFLOW && r.headline() > 0.0 => {
            format!("{RINGFLOW} {:.2}x {reference} ({})", ours.headline() / r.headline(), show(r))
        }
        (Some(r), _) => format!("{reference} {}", show(r)),
    };
    let besides = if reference == LIMIT { "the limit" } else { reference };
    match rivals.as_slice() {
        [] => format!("{case}: nothing measured besides {besides}; {against_reference}"),
        [only] => format!(
            "{case}: {} is the only impl measured besides {besides} ({}); {against_reference}",
            only.imp,
            show(only)
        ),
        [win, next, rest @ ..] => {
            let mut line = format!(
                "{case}: {} wins ({}), {:.2}x {word} {} ({})",
                win.imp,
                show(win),
                factor(win, next),
                next.imp,
                show(next)
            );
            // Ringflow further back than the runner-up: say by how much.
            if let Some(ours) = rest.iter().find(|r| r.imp == RINGFLOW) {
                line.push_str(&format!(", {:.2}x {word} {RINGFLOW} ({})", factor(win, ours), show(ours)));
            }
            format!("{line}; {against_reference}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(case: &'static str, imp: &'static str, metric: Metric, p50: u64, rate: f64) -> Record {
        Record::for_tests(case, imp, metric, p50, rate)
    }

    #[test]
    fn the_winner_excludes_the_limit() {
        let recs = [
            rec("a", LIMIT, Metric::Latency, 50, 0.0),
            rec("a", "slow", Metric::Latency, 300, 0.0),
            rec("a", "fast", Metric::Latency, 100, 0.0),
        ];
        let line = case_line("a", Metric::Latency, LIMIT, &recs);
        assert_eq!(line, "a: fast wins (p50 100 ns), 3.00x lower p50 than slow (p50 300 ns); limit p50 50 ns");
    }

    /// A case without a limit impl: the line goes against its reference,
    /// which is not a rival.
    #[test]
    fn a_reference_stands_in_for_a_missing_limit() {
        let recs = [
            rec("a", "floor", Metric::Latency, 200, 0.0),
            rec("a", "x", Metric::Latency, 300, 0.0),
            rec("a", "y", Metric::Latency, 600, 0.0),
        ];
        let line = case_line("a", Metric::Latency, "floor", &recs);
        assert_eq!(line, "a: x wins (p50 300 ns), 2.00x lower p50 than y (p50 600 ns); floor p50 200 ns");
    }

    #[test]
    fn ringflow_winning_is_set_against_the_limit() {
        let recs = [
            rec("a", LIMIT, Metric::Latency, 100, 0.0),
            rec("a", RINGFLOW, Metric::Latency, 140, 0.0),
            rec("a", "crossbeam", Metric::Latency, 448, 0.0),
        ];
        let line = case_line("a", Metric::Latency, LIMIT, &recs);
        assert_eq!(
            line,
            "a: ringflow wins (p50 140 ns), 3.20x lower p50 than crossbeam (p50 448 ns); ringflow 1.40x limit (p50 100 ns)"
        );
    }

    /// Ringflow third: the winner's factor over it is said too.
    #[test]
    fn ringflow_behind_the_runner_up_is_named() {
        let recs = [
            rec("s", LIMIT, Metric::Throughput, 1, 100e6),
            rec("s", "rtrb", Metric::Throughput, 1, 60e6),
            rec("s", "crossbeam", Metric::Throughput, 1, 50e6),
            rec("s", RINGFLOW, Metric::Throughput, 1, 30e6),
        ];
        let line = case_line("s", Metric::Throughput, LIMIT, &recs);
        assert_eq!(
            line,
            "s: rtrb wins (60.00M msgs/s), 1.20x the msgs/s of crossbeam (50.00M msgs/s), \
             2.00x the msgs/s of ringflow (30.00M msgs/s); ringflow 0.30x limit (100.00M msgs/s)"
        );
    }

    #[test]
    fn a_lone_impl_and_an_unmeasured_limit() {
        let recs = [rec("s", RINGFLOW, Metric::Throughput, 1, 5e3)];
        let line = case_line("s", Metric::Throughput, LIMIT, &recs);
        assert_eq!(line, "s: ringflow is the only impl measured besides the limit (5.00k msgs/s); limit not measured");
        assert_eq!(
            case_line("t", Metric::Latency, LIMIT, &recs),
            "t: nothing measured besides the limit; limit not measured"
        );
    }
}
