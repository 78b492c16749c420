//! Latency histograms and live statistics: the switches, the reader of
//! other processes' statistics, and the standard HdrHistogram interval-log
//! format, so that existing tools (HistogramLogAnalyzer, hdr-plot, the
//! `hdrhistogram` crate itself) read what ringflow recorded.
//!
//! A flow's counters and histograms come from [`Flow::stats`](crate::Flow::stats);
//! histograms are `hdrhistogram::Histogram<u64>` in nanoseconds (3
//! significant digits, 1 ns ..= 68.7 s), so they merge with
//! [`Histogram::add`] and reset with [`Flow::reset_latency`](crate::Flow::reset_latency).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::Engine as _;

use hdrhistogram::serialization::interval_log::{IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};

pub use hdrhistogram::Histogram;
pub use ringflow_core::clock::ClockSource;
use ringflow_core::control::RuntimeDir;
/// A JSON string literal (for tools printing statistics as JSON lines).
pub use ringflow_core::json::string as json_string;
pub use ringflow_core::stats::{latency_default, read_dir, set_latency_default};
pub use ringflow_core::stats::{ProcessStats, ReadError, SlotKind, SlotSnapshot};

/// The runtime directory whose processes `ringflow stat` lists: `dir`, or
/// the default one (see [`FlowOptions::runtime_dir`](crate::FlowOptions::runtime_dir)).
pub fn runtime_dir(dir: Option<&Path>) -> io::Result<PathBuf> {
    let d = match dir {
        Some(p) => RuntimeDir::at(p),
        None => RuntimeDir::resolve(),
    };
    d.map(|d| d.path().to_path_buf()).map_err(io::Error::other)
}

/// The names bound in runtime directory `dir` (listeners' sockets).
pub fn bound_names(dir: &Path) -> io::Result<Vec<String>> {
    RuntimeDir::at(dir).map_err(io::Error::other)?.list_names().map_err(io::Error::other)
}

/// One histogram of an interval log.
#[derive(Clone, Debug)]
pub struct Interval<'a> {
    /// A label without spaces or commas (they are replaced by `_`).
    pub tag: &'a str,
    /// When the interval began, after the log's base time.
    pub start: Duration,
    pub length: Duration,
    pub hist: &'a Histogram<u64>,
}

/// An interval read back from a log.
#[derive(Clone, Debug)]
pub struct LoggedInterval {
    pub tag: Option<String>,
    pub start: Duration,
    pub length: Duration,
    pub hist: Histogram<u64>,
}

/// The log format version HdrHistogram's Java writer declares (its reader
/// picks the parser by it); the lines written here are that format.
const FORMAT_VERSION_COMMENT: &str = "[Histogram log format version 1.3]";

/// Values are nanoseconds; the informational max column is in
/// milliseconds, as HdrHistogram's Java writer and its tools expect.
const MAX_VALUE_DIVISOR: f64 = 1e6;

/// Writes `intervals` as an HdrHistogram interval log (V2, compressed, as
/// Java's `HistogramLogWriter` writes them), headed by `comments`, with
/// `base` as its StartTime and BaseTime.
pub fn write_interval_log(
    out: &mut dyn Write,
    base: SystemTime,
    comments: &[&str],
    intervals: &[Interval<'_>],
) -> io::Result<()> {
    let mut serializer = V2DeflateSerializer::new();
    let mut out = out;
    let mut builder = IntervalLogWriterBuilder::new();
    builder.add_comment(FORMAT_VERSION_COMMENT);
    for c in comments {
        builder.add_comment(c);
    }
    let mut writer = builder
        .add_comment("values: nanoseconds")
        .with_start_time(base)
        .with_base_time(base)
        .with_max_value_divisor(MAX_VALUE_DIVISOR)
        .begin_log_with(&mut out, &mut serializer)?;
    for i in intervals {
        let tag: String = i.tag.chars().map(|c| if matches!(c, ' ' | ',' | '\r' | '\n') { '_' } else { c }).collect();
        writer.write_histogram(i.hist, i.start, i.length, Tag::new(&tag)).map_err(|e| match e {
            hdrhistogram::serialization::interval_log::IntervalLogWriterError::IoError(e) => e,
            e => io::Error::other(format!("interval log: {e}")),
        })?;
    }
    Ok(())
}

/// Reads an interval log (every histogram; comments and headers skipped).
pub fn read_interval_log(bytes: &[u8]) -> io::Result<Vec<LoggedInterval>> {
    let mut deserializer = Deserializer::new();
    let mut out = Vec::new();
    for entry in IntervalLogIterator::new(bytes) {
        let entry = entry.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("interval log: {e:?}")))?;
        if let LogEntry::Interval(h) = entry {
            let encoded = base64::engine::general_purpose::STANDARD
                .decode(h.encoded_histogram())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("interval log: {e}")))?;
            let hist: Histogram<u64> = deserializer
                .deserialize(&mut &encoded[..])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("interval log: {e:?}")))?;
            out.push(LoggedInterval {
                tag: h.tag().map(|t| t.as_str().to_owned()),
                start: h.start_timestamp(),
                length: h.duration(),
                hist,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_logs_round_trip() {
        let mut a = Histogram::<u64>::new_with_bounds(1, (1 << 36) - 1, 3).unwrap();
        let mut b = a.clone();
        for v in [120, 130, 150, 900, 5_000, 1_000_000] {
            a.record(v).unwrap();
        }
        b.record_n(42, 7).unwrap();
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let intervals = [
            Interval { tag: "flow orders", start: Duration::ZERO, length: Duration::from_secs(1), hist: &a },
            Interval { tag: "rtt", start: Duration::from_secs(1), length: Duration::from_secs(1), hist: &b },
        ];
        let mut out = Vec::new();
        write_interval_log(&mut out, base, &["a test"], &intervals).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("#[Histogram log format version 1.3]\n#a test\n"), "{text}");
        assert!(text.contains("#[StartTime: 1700000000.000"), "{text}");
        let back = read_interval_log(&out).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].tag.as_deref(), Some("flow_orders"));
        assert_eq!(back[0].hist, a);
        assert_eq!(back[1].hist, b);
        assert_eq!(back[1].start, Duration::from_secs(1));
    }
}
