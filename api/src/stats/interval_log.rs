//! The standard HdrHistogram interval-log format (feature `interval-log`),
//! so that existing tools (HistogramLogAnalyzer, hdr-plot, the
//! `hdrhistogram` crate itself) read what ringflow recorded. A feature of
//! its own: its encoding (deflate, base64, a parser) is eight crates that a
//! transport alone does not need.

use std::fmt;
use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, IntervalLogWriterError, LogEntry, LogIteratorError, Tag,
};
pub use hdrhistogram::serialization::{DeserializeError, V2DeflateSerializeError};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

/// Why an interval log could not be written or read.
#[derive(Debug)]
#[non_exhaustive]
pub enum IntervalLogError {
    /// Writing to the output failed.
    Io(io::Error),
    /// A histogram could not be serialized.
    Serialize(V2DeflateSerializeError),
    /// The text at byte `offset` is not an interval log line.
    Syntax {
        /// Where the line starts, in bytes from the log's start.
        offset: usize,
    },
    /// The histogram of interval `index` (from 0) is not valid base64.
    Base64 {
        /// The interval, from 0.
        index: usize,
    },
    /// The histogram of interval `index` (from 0) could not be decoded.
    Histogram {
        /// The interval, from 0.
        index: usize,
        /// What the decoder said.
        source: DeserializeError,
    },
}

impl fmt::Display for IntervalLogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntervalLogError::Io(e) => write!(f, "writing the interval log: {e}"),
            IntervalLogError::Serialize(e) => write!(f, "serializing a histogram: {e}"),
            IntervalLogError::Syntax { offset } => write!(f, "interval log: not a log line at byte {offset}"),
            IntervalLogError::Base64 { index } => write!(f, "interval log: histogram {index} is not valid base64"),
            IntervalLogError::Histogram { index, source } => {
                write!(f, "interval log: histogram {index} does not decode: {source}")
            }
        }
    }
}

impl std::error::Error for IntervalLogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            IntervalLogError::Io(e) => Some(e),
            IntervalLogError::Serialize(e) => Some(e),
            IntervalLogError::Histogram { source, .. } => Some(source),
            IntervalLogError::Syntax { .. } | IntervalLogError::Base64 { .. } => None,
        }
    }
}

impl From<IntervalLogWriterError<V2DeflateSerializeError>> for IntervalLogError {
    fn from(e: IntervalLogWriterError<V2DeflateSerializeError>) -> Self {
        match e {
            IntervalLogWriterError::IoError(e) => IntervalLogError::Io(e),
            IntervalLogWriterError::SerializeError(e) => IntervalLogError::Serialize(e),
        }
    }
}

/// One histogram of an interval log.
#[derive(Clone, Debug)]
pub struct Interval<'a> {
    /// A label without spaces or commas (they are replaced by `_`).
    pub tag: &'a str,
    /// When the interval began, after the log's base time.
    pub start: Duration,
    /// How long the interval lasted.
    pub length: Duration,
    /// The latencies recorded in it.
    pub hist: &'a Histogram<u64>,
}

/// An interval read back from a log.
#[derive(Clone, Debug)]
pub struct LoggedInterval {
    /// Its label, if the line had one.
    pub tag: Option<String>,
    /// When the interval began, after the log's base time.
    pub start: Duration,
    /// How long the interval lasted.
    pub length: Duration,
    /// The latencies recorded in it.
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
) -> Result<(), IntervalLogError> {
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
        .begin_log_with(&mut out, &mut serializer)
        .map_err(IntervalLogError::Io)?;
    for i in intervals {
        let tag: String = i.tag.chars().map(|c| if matches!(c, ' ' | ',' | '\r' | '\n') { '_' } else { c }).collect();
        writer.write_histogram(i.hist, i.start, i.length, Tag::new(&tag))?;
    }
    Ok(())
}

/// Reads an interval log (every histogram; comments and headers skipped).
pub fn read_interval_log(bytes: &[u8]) -> Result<Vec<LoggedInterval>, IntervalLogError> {
    let mut deserializer = Deserializer::new();
    let mut out = Vec::new();
    for entry in IntervalLogIterator::new(bytes) {
        let entry = entry.map_err(|LogIteratorError::ParseError { offset }| IntervalLogError::Syntax { offset })?;
        if let LogEntry::Interval(h) = entry {
            let index = out.len();
            let encoded = base64::engine::general_purpose::STANDARD
                .decode(h.encoded_histogram())
                .map_err(|_| IntervalLogError::Base64 { index })?;
            let hist: Histogram<u64> = deserializer
                .deserialize(&mut &encoded[..])
                .map_err(|source| IntervalLogError::Histogram { index, source })?;
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

    #[test]
    fn unreadable_logs_say_where_and_why() {
        use std::error::Error as _;
        match read_interval_log(b"this is not a log line\n") {
            Err(IntervalLogError::Syntax { offset }) => assert_eq!(offset, 0),
            other => panic!("{other:?}"),
        }
        let h = Histogram::<u64>::new_with_bounds(1, (1 << 36) - 1, 3).unwrap();
        let at = |s| Interval { tag: "t", start: Duration::from_secs(s), length: Duration::from_secs(1), hist: &h };
        let mut out = Vec::new();
        write_interval_log(&mut out, SystemTime::UNIX_EPOCH, &[], &[at(0), at(1)]).unwrap();
        let text = String::from_utf8(out).unwrap();
        // The second interval's histogram: base64 with a byte outside it.
        let last = text.lines().last().unwrap();
        let broken = text.replace(last, &format!("{},!!!!", &last[..last.rfind(',').unwrap()]));
        match read_interval_log(broken.as_bytes()) {
            Err(e @ IntervalLogError::Base64 { index: 1 }) => assert!(e.to_string().contains("histogram 1"), "{e}"),
            other => panic!("{other:?}"),
        }
        // Valid base64 of bytes that are no histogram.
        let broken = text.replace(last, &format!("{},AAAAAAAA", &last[..last.rfind(',').unwrap()]));
        match read_interval_log(broken.as_bytes()) {
            Err(e @ IntervalLogError::Histogram { index: 1, .. }) => {
                assert!(e.source().and_then(|s| s.downcast_ref::<DeserializeError>()).is_some(), "{e:?}")
            }
            other => panic!("{other:?}"),
        }
        // A writer that fails is an I/O error, kept whole.
        struct Refuses;
        impl Write for Refuses {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from_raw_os_error(libc::ENOSPC))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        match write_interval_log(&mut Refuses, SystemTime::UNIX_EPOCH, &[], &[at(0)]) {
            Err(IntervalLogError::Io(e)) => assert_eq!(e.raw_os_error(), Some(libc::ENOSPC)),
            other => panic!("{other:?}"),
        }
    }
}
