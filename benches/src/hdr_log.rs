//! HdrHistogram interval logs of a run: each measured (case, impl) as one
//! standard log file, `<scenario>.<case>.<impl>.hlog`, that HdrHistogram's
//! own tools read (HistogramLogProcessor, HdrHistogramVisualizer, the
//! hdrhistogram crate's `IntervalLogIterator`). Written after the run from
//! the kept histograms; never while anything is measured.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use ringflow_api::stats::{write_interval_log, Interval, IntervalLogError};

use crate::error::BenchError;
use crate::report::{CaseHistogram, ScenarioReport};

/// `<scenario>.<case>.<impl>.hlog`.
pub fn file_name(scenario: &str, case: &str, imp: &str) -> String {
    format!("{scenario}.{case}.{imp}.hlog")
}

/// The tag of the log's one interval: `<scenario>/<case>/<impl>`, as the
/// progress line names it.
pub fn tag(scenario: &str, case: &str, imp: &str) -> String {
    format!("{scenario}/{case}/{imp}")
}

/// Writes one interval log per measured (case, impl) of `report` into `dir`
/// (created if missing) and returns their paths, in run order.
pub fn write_logs(dir: &Path, report: &ScenarioReport) -> Result<Vec<PathBuf>, BenchError> {
    fs::create_dir_all(dir).map_err(|source| BenchError::Output { path: dir.to_path_buf(), source })?;
    let mut paths = Vec::with_capacity(report.histograms.len());
    for h in &report.histograms {
        let path = dir.join(file_name(report.scenario, h.case, h.imp));
        let output = |source| BenchError::Output { path: path.clone(), source };
        let mut file = BufWriter::new(fs::File::create(&path).map_err(output)?);
        write_log(&mut file, report.scenario, h)
            .map_err(|source| BenchError::IntervalLog { path: path.clone(), source })?;
        file.flush().map_err(output)?;
        paths.push(path);
    }
    Ok(paths)
}

/// Writes the interval log of one (case, impl): comments naming it, a
/// StartTime and a BaseTime (both the start of the impl's run, warm-up
/// included), then one interval tagged `<scenario>/<case>/<impl>`: the
/// measured window.
pub fn write_log(out: &mut dyn Write, scenario: &str, h: &CaseHistogram) -> Result<(), IntervalLogError> {
    let about = format!("ringflow bench: scenario {scenario}, case {}, impl {}", h.case, h.imp);
    let comments = [
        about.as_str(),
        "latency per the case (round trip or one-way); warm-up excluded",
        "StartTime = BaseTime = start of this impl's run; the interval = its measured window",
    ];
    let tag = tag(scenario, h.case, h.imp);
    let interval = Interval { tag: &tag, start: h.window_offset, length: h.window, hist: &h.hist };
    write_interval_log(out, h.run_start, &comments, &[interval])
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::{Duration, SystemTime};

    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::Histogram;

    use super::*;
    use crate::measure::new_histogram;

    /// A histogram shaped like a latency run: a body, a tail, an outlier.
    fn latency_like() -> Histogram<u64> {
        let mut h = new_histogram().expect("histogram");
        for i in 0..10_000u64 {
            h.record(150 + i % 97).expect("record");
        }
        for i in 0..100u64 {
            h.record(2_000 + i * 31).expect("record");
        }
        h.record(3_500_000).expect("record");
        h
    }

    fn kept(hist: Histogram<u64>) -> CaseHistogram {
        CaseHistogram {
            case: "pingpong-64B",
            imp: "ringflow",
            hist,
            // A whole second keeps the timestamps exact at the log's 3 decimals.
            run_start: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            window_offset: Duration::from_millis(153),
            window: Duration::from_millis(500),
        }
    }

    /// Everything one log holds, read back with the crate's own reader.
    pub(crate) struct ReadBack {
        pub(crate) start: Option<Duration>,
        pub(crate) base: Option<Duration>,
        pub(crate) tag: Option<String>,
        pub(crate) offset: Duration,
        pub(crate) window: Duration,
        pub(crate) hist: Histogram<u64>,
    }

    /// Reads a log of one interval (the crate's reader for the headers,
    /// ringflow's for the histograms), panicking on anything else.
    pub(crate) fn read_back(bytes: &[u8]) -> ReadBack {
        let (mut start, mut base) = (None, None);
        for entry in IntervalLogIterator::new(bytes) {
            match entry.expect("a well-formed log") {
                LogEntry::StartTime(t) => start = Some(t),
                LogEntry::BaseTime(t) => base = Some(t),
                LogEntry::Interval(_) => {}
            }
        }
        let mut intervals = ringflow_api::stats::read_interval_log(bytes).expect("a well-formed log");
        assert_eq!(intervals.len(), 1, "one interval per log");
        let i = intervals.remove(0);
        ReadBack { start, base, tag: i.tag, offset: i.start, window: i.length, hist: i.hist }
    }

    #[test]
    fn an_interval_log_round_trips() {
        let original = latency_like();
        let h = kept(original.clone());
        let mut bytes = Vec::new();
        write_log(&mut bytes, "ring", &h).expect("write");
        let text = String::from_utf8(bytes.clone()).expect("a text format");
        assert!(text.starts_with("#[Histogram log format version 1.3]\n"), "{text}");

        let back = read_back(&bytes);
        let epoch_secs = Duration::from_secs(1_700_000_000);
        assert_eq!((back.start, back.base), (Some(epoch_secs), Some(epoch_secs)));
        assert_eq!(back.tag.as_deref(), Some("ring/pingpong-64B/ringflow"));
        assert_eq!((back.offset, back.window), (h.window_offset, h.window));
        assert_eq!(back.hist.len(), original.len());
        for q in [0.0, 0.5, 0.9, 0.99, 0.999, 0.9999, 1.0] {
            assert_eq!(back.hist.value_at_quantile(q), original.value_at_quantile(q), "quantile {q}");
        }
        assert_eq!((back.hist.min(), back.hist.max()), (original.min(), original.max()));
        // Every bucket's count, not only the quantiles asked above.
        assert_eq!(back.hist, original);
    }

    #[test]
    fn one_file_per_measured_impl_named_after_it() {
        let tmp = crate::scenarios::smoke::fresh_dir("hdr-log");
        let dir = tmp.path();
        let other = CaseHistogram { imp: "limit", ..kept(latency_like()) };
        let report = ScenarioReport {
            scenario: "ring",
            histograms: vec![kept(latency_like()), other],
            ..ScenarioReport::default()
        };
        let paths = write_logs(dir, &report).expect("write");
        let names: Vec<_> = paths.iter().map(|p| p.file_name().and_then(|n| n.to_str()).unwrap_or("")).collect();
        assert_eq!(names, ["ring.pingpong-64B.ringflow.hlog", "ring.pingpong-64B.limit.hlog"]);
        let back = read_back(&fs::read(&paths[1]).expect("read"));
        assert_eq!(back.tag.as_deref(), Some("ring/pingpong-64B/limit"));
        assert_eq!(back.hist, report.histograms[1].hist);
    }
}
