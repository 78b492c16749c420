//! The summary in words that ends a scenario's text report: for each case,
//! ringflow against its best peer (another transport: sockets, pipes,
//! rtrb, crossbeam, tokio, iceoryx2), never against its own variants
//! (`ringflow-batch`, `flow`, a group's knobs: they are ringflow too), and
//! ringflow against the case's limit, with what that limit is and whether
//! the latency is a round trip or one way. Built from the records of this
//! run only; nothing is estimated.

use crate::report::{si, Record};
use crate::scenario::{Metric, LIMIT};

/// The impl the summary follows.
pub const RINGFLOW: &str = "ringflow";

/// The impl names of ringflow's peers (a name or its `-variant`, e.g.
/// `tcp-spin`). Every other impl but the limit is ringflow's own.
pub const PEERS: &[&str] = &["unix-socket", "tcp", "pipe", "tokio", "rtrb", "crossbeam", "iceoryx2"];

/// Whether `imp` is a peer of ringflow rather than ringflow or one of its
/// variants.
pub fn is_peer(imp: &str) -> bool {
    PEERS.iter().any(|p| imp == *p || imp.strip_prefix(p).is_some_and(|rest| rest.starts_with('-')))
}

/// What a case's latency figures are: a latency case times round trips
/// (ping-pong, calls), a throughput case one-way latency under load.
pub fn latency_is(metric: Metric) -> &'static str {
    match metric {
        Metric::Latency => "round trip",
        Metric::Throughput => "one way",
    }
}

/// What `case`'s ratios are taken against, in words: what its `about` says
/// the limit is (`limit = …`), else the limit impl of its kind; for a case
/// without a limit impl, its reference.
pub fn limit_of(about: &str, metric: Metric, reference: &str) -> String {
    if reference != LIMIT {
        return format!("no physical limit measured, ratios against {reference}");
    }
    if let Some(said) = about.split("limit = ").nth(1) {
        let end = said.find([';', ',']).unwrap_or(said.len());
        return format!("limit = {}", said[..end].trim());
    }
    match metric {
        Metric::Latency => "limit = two threads handing a cache line back and forth".to_owned(),
        Metric::Throughput => "limit = a raw ring of slots, one sequence word per slot".to_owned(),
    }
}

/// One sentence for `case`: ringflow's headline figure against the best
/// peer's (which is ahead, by what factor), then ringflow against the
/// reference (`limit` says what it is), and what the latency measures.
pub fn case_line(case: &str, metric: Metric, reference: &str, limit: &str, records: &[Record]) -> String {
    let in_case = |imp: &str| records.iter().find(|r| r.case == case && r.imp == imp);
    let better = |a: &Record, b: &Record| match metric {
        Metric::Latency => a.headline() < b.headline(),
        Metric::Throughput => a.headline() > b.headline(),
    };
    let best_peer = records.iter().filter(|r| r.case == case && r.imp != reference && is_peer(r.imp)).fold(
        None::<&Record>,
        |best, r| match best {
            Some(b) if !better(r, b) => Some(b),
            _ => Some(r),
        },
    );
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
    // ringflow's own impl; in a case that has only one variant of it (the
    // async ping-pong's `ringflow-async`), that variant.
    let ours = in_case(RINGFLOW).or_else(|| {
        let mut variants = records.iter().filter(|r| r.case == case && r.imp.starts_with("ringflow-"));
        variants.next().filter(|_| variants.next().is_none())
    });
    let versus = match (ours, best_peer) {
        (Some(o), Some(p)) if o.headline() > 0.0 && p.headline() > 0.0 => {
            let (win, lose) = if better(p, o) { (p, o) } else { (o, p) };
            format!(
                "{} ({}) vs its best peer {} ({}): {} {:.2}x {word} {}",
                o.imp,
                show(o),
                p.imp,
                show(p),
                win.imp,
                factor(win, lose),
                lose.imp
            )
        }
        (Some(o), Some(p)) => format!("{} ({}) vs its best peer {} ({})", o.imp, show(o), p.imp, show(p)),
        (Some(o), None) => format!("{} ({}), no peer measured", o.imp, show(o)),
        (None, Some(p)) => format!("{RINGFLOW} not measured; best peer {} ({})", p.imp, show(p)),
        (None, None) => format!("{RINGFLOW} not measured, no peer measured"),
    };
    let against_reference = match (in_case(reference), ours) {
        (None, _) => format!("{reference} not measured"),
        (Some(r), Some(o)) if reference != o.imp && r.headline() > 0.0 => {
            format!("{} {:.2}x {reference} ({})", o.imp, o.headline() / r.headline(), show(r))
        }
        (Some(r), _) => format!("{reference} {}", show(r)),
    };
    format!("{case}: {versus}; {against_reference} [{limit}; latency = {}]", latency_is(metric))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(case: &'static str, imp: &'static str, metric: Metric, p50: u64, rate: f64) -> Record {
        Record::for_tests(case, imp, metric, p50, rate)
    }

    const LAT: &str = "limit = cache-line handoff";

    #[test]
    fn peers_are_other_transports_and_variants_are_ringflow() {
        for peer in
            ["tcp", "tcp-spin", "unix-socket", "unix-socket-spin", "pipe", "tokio", "rtrb", "crossbeam", "iceoryx2"]
        {
            assert!(is_peer(peer), "{peer}");
        }
        for own in [RINGFLOW, "ringflow-batch", "ringflow-key", "flow", "flows", "flow-pingpong", "block-16KiB", LIMIT]
        {
            assert!(!is_peer(own), "{own}");
        }
        assert!(!is_peer("tcpx"), "a prefix alone is not a peer");
    }

    /// Ringflow's own variants never stand in for a peer, even when faster.
    #[test]
    fn ringflow_is_set_against_its_best_peer_not_its_variants() {
        let recs = [
            rec("a", LIMIT, Metric::Latency, 100, 0.0),
            rec("a", "ringflow-nohist", Metric::Latency, 120, 0.0),
            rec("a", RINGFLOW, Metric::Latency, 140, 0.0),
            rec("a", "crossbeam", Metric::Latency, 448, 0.0),
            rec("a", "rtrb", Metric::Latency, 280, 0.0),
        ];
        let line = case_line("a", Metric::Latency, LIMIT, LAT, &recs);
        assert_eq!(
            line,
            "a: ringflow (p50 140 ns) vs its best peer rtrb (p50 280 ns): ringflow 2.00x lower p50 than rtrb; \
             ringflow 1.40x limit (p50 100 ns) [limit = cache-line handoff; latency = round trip]"
        );
    }

    /// A case whose only ringflow impl is a variant (the async ping-pong's
    /// `ringflow-async`) is summed up by it; with several variants and no
    /// plain impl, none is picked.
    #[test]
    fn a_lone_variant_stands_for_ringflow() {
        let recs = [
            rec("z", LIMIT, Metric::Latency, 70_000, 0.0),
            rec("z", "ringflow-async", Metric::Latency, 65_000, 0.0),
            rec("z", "tokio-uds", Metric::Latency, 61_000, 0.0),
        ];
        let line = case_line("z", Metric::Latency, LIMIT, LAT, &recs);
        assert!(line.starts_with("z: ringflow-async (p50 65000 ns) vs its best peer tokio-uds"), "{line}");
        assert!(line.contains("ringflow-async 0.93x limit"), "{line}");
        let two = [recs[0].clone(), recs[1].clone(), rec("z", "ringflow-batch", Metric::Latency, 1, 0.0)];
        assert!(case_line("z", Metric::Latency, LIMIT, LAT, &two).contains("ringflow not measured"));
    }

    #[test]
    fn a_peer_ahead_of_ringflow_is_said_so() {
        let recs = [
            rec("s", LIMIT, Metric::Throughput, 1, 100e6),
            rec("s", "rtrb", Metric::Throughput, 1, 60e6),
            rec("s", "crossbeam", Metric::Throughput, 1, 50e6),
            rec("s", "ringflow-batch", Metric::Throughput, 1, 90e6),
            rec("s", RINGFLOW, Metric::Throughput, 1, 30e6),
        ];
        let line = case_line("s", Metric::Throughput, LIMIT, "limit = a raw ring", &recs);
        assert_eq!(
            line,
            "s: ringflow (30.00M msgs/s) vs its best peer rtrb (60.00M msgs/s): rtrb 2.00x the msgs/s of ringflow; \
             ringflow 0.30x limit (100.00M msgs/s) [limit = a raw ring; latency = one way]"
        );
    }

    /// A case without a limit impl: the line goes against its reference,
    /// which is not counted as a peer.
    #[test]
    fn a_reference_stands_in_for_a_missing_limit() {
        let recs = [
            rec("a", "tcp-spin", Metric::Latency, 200, 0.0),
            rec("a", RINGFLOW, Metric::Latency, 300, 0.0),
            rec("a", "tokio", Metric::Latency, 600, 0.0),
        ];
        let limit = limit_of("round trip over TCP", Metric::Latency, "tcp-spin");
        assert_eq!(limit, "no physical limit measured, ratios against tcp-spin");
        let line = case_line("a", Metric::Latency, "tcp-spin", &limit, &recs);
        assert_eq!(
            line,
            "a: ringflow (p50 300 ns) vs its best peer tokio (p50 600 ns): ringflow 2.00x lower p50 than tokio; \
             ringflow 1.50x tcp-spin (p50 200 ns) [no physical limit measured, ratios against tcp-spin; \
             latency = round trip]"
        );
    }

    #[test]
    fn no_peer_and_nothing_measured() {
        let recs = [rec("s", RINGFLOW, Metric::Throughput, 1, 5e3), rec("s", "flows", Metric::Throughput, 1, 9e3)];
        assert_eq!(
            case_line("s", Metric::Throughput, LIMIT, "limit = x", &recs),
            "s: ringflow (5.00k msgs/s), no peer measured; limit not measured [limit = x; latency = one way]"
        );
        assert_eq!(
            case_line("t", Metric::Latency, LIMIT, "limit = y", &recs),
            "t: ringflow not measured, no peer measured; limit not measured [limit = y; latency = round trip]"
        );
    }

    #[test]
    fn the_limit_is_what_the_case_says_it_is() {
        let about = "round trip, both asleep: limit = shared futex wait/wake, no spinning; ringflow = a flow";
        assert_eq!(limit_of(about, Metric::Latency, LIMIT), "limit = shared futex wait/wake");
        assert_eq!(
            limit_of("one-way stream", Metric::Throughput, LIMIT),
            "limit = a raw ring of slots, one sequence word per slot"
        );
    }
}
