//! Latency histograms and live statistics: the switches, the reader of
//! other processes' statistics, and the standard HdrHistogram interval-log
//! format, so that existing tools (HistogramLogAnalyzer, hdr-plot, the
//! `hdrhistogram` crate itself) read what ringflow recorded.
//!
//! A flow's counters and histograms come from [`Flow::stats`](crate::Flow::stats);
//! histograms are `hdrhistogram::Histogram<u64>` in nanoseconds (3
//! significant digits, 1 ns ..= 68.7 s), so they merge with
//! [`Histogram::add`] and reset with [`Flow::reset_latency`](crate::Flow::reset_latency).

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::Engine as _;

use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, IntervalLogWriterError, LogEntry, LogIteratorError, Tag,
};
pub use hdrhistogram::serialization::{DeserializeError, V2DeflateSerializeError};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};

pub use hdrhistogram::Histogram;
pub use ringflow_core::clock::ClockSource;
use ringflow_core::control::RuntimeDir;
pub use ringflow_core::control::{DirError, ListError};
pub use ringflow_core::group::{group_of_bound_name, GroupSnapshot, InspectError, MemberSnapshot, MemberState};
/// A JSON string literal (for tools printing statistics as JSON lines).
pub use ringflow_core::json::string as json_string;
pub use ringflow_core::stats::GroupCounter;
pub use ringflow_core::stats::{latency_default, read_dir, set_latency_default};
pub use ringflow_core::stats::{ProcessStats, ReadError, SlotKind, SlotSnapshot};

/// The runtime directory whose processes `ringflow stat` lists: `dir`, or
/// the default one (see [`FlowOptions::runtime_dir`](crate::FlowOptions::runtime_dir)).
pub fn runtime_dir(dir: Option<&Path>) -> Result<PathBuf, DirError> {
    let d = match dir {
        Some(p) => RuntimeDir::at(p),
        None => RuntimeDir::resolve(),
    };
    d.map(|d| d.path().to_path_buf())
}

/// Why the names bound in a runtime directory could not be listed.
#[derive(Debug)]
#[non_exhaustive]
pub enum BoundNamesError {
    /// The runtime directory is unusable (missing, wrong owner or mode).
    RuntimeDir(DirError),
    /// Reading the directory failed.
    List(ListError),
}

impl fmt::Display for BoundNamesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BoundNamesError::RuntimeDir(e) => write!(f, "{e}"),
            BoundNamesError::List(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for BoundNamesError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BoundNamesError::RuntimeDir(e) => Some(e),
            BoundNamesError::List(e) => Some(e),
        }
    }
}

/// The names bound in runtime directory `dir` (listeners' sockets).
pub fn bound_names(dir: &Path) -> Result<Vec<String>, BoundNamesError> {
    RuntimeDir::at(dir).map_err(BoundNamesError::RuntimeDir)?.list_names().map_err(BoundNamesError::List)
}

/// The process that holds bound name `name` of runtime directory `dir`:
/// the pid the kernel's lock table gives for the name's lock (a listener
/// holds it for as long as it lives), or `None` when no live process
/// holds it (a crashed listener's leftover files, or no such name).
pub fn name_holder(dir: &Path, name: &str) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let lock = RuntimeDir::at(dir).ok()?.lock_path(name).ok()?;
    let meta = std::fs::symlink_metadata(lock).ok()?;
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    holder_in(&locks, meta.dev(), meta.ino())
}

/// The pid of the `FLOCK` entry of `/proc/locks` (text `locks`) on the
/// file of device `dev` and inode `ino`. The kernel prints a device as
/// `major:minor` in hex (`MAJOR`/`MINOR` of the new encoding).
fn holder_in(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    locks.lines().find_map(|line| {
        let mut f = line.split_whitespace().skip(1);
        let (kind, pid, file) = (f.next()?, f.nth(2)?, f.next()?);
        let mut parts = file.split(':');
        let (maj, min, i) = (parts.next()?, parts.next()?, parts.next()?);
        let same = kind == "FLOCK"
            && u32::from_str_radix(maj, 16).ok()? == major
            && u32::from_str_radix(min, 16).ok()? == minor
            && i.parse::<u64>().ok()? == ino;
        same.then(|| pid.parse().ok()).flatten()
    })
}

/// Group `name` of runtime directory `dir` as its memory shows it now:
/// keeper, latest view, members with their state, counters and lag behind
/// the log's tail (see [`GroupSnapshot::slowest`]). Asks the group's keeper
/// (which checks this process against the group's permit, as for a
/// joiner), waiting for its answer up to `timeout`.
pub fn inspect_group(dir: &Path, name: &str, timeout: Duration) -> Result<GroupSnapshot, InspectError> {
    ringflow_core::group::inspect(dir, name, ringflow_core::Deadline::after(timeout))
}

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

    /// A listener's name is held by this process while it lives, and by
    /// nobody once it is dropped; lines of other kinds and devices never
    /// match.
    #[test]
    fn a_bound_name_is_held_by_its_listener_process() {
        let tmp = ringflow_testkit::temp_dir("holder");
        let l = crate::Listener::bind_with("held", crate::ListenerOptions::new().runtime_dir(tmp.path())).unwrap();
        assert_eq!(name_holder(tmp.path(), "held"), Some(std::process::id()));
        drop(l);
        assert_eq!(name_holder(tmp.path(), "held"), None);
        let locks = "1: POSIX  ADVISORY  WRITE 10 fe:00:77 0 EOF\n2: FLOCK  ADVISORY  WRITE 11 fe:01:77 0 EOF\n\
                     3: FLOCK  ADVISORY  WRITE 12 fe:00:77 0 EOF\n";
        assert_eq!(holder_in(locks, libc::makedev(0xfe, 0), 77), Some(12));
        assert_eq!(holder_in(locks, libc::makedev(0xfe, 0), 78), None);
    }

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

    #[test]
    fn an_unusable_runtime_directory_is_a_dir_error() {
        let tmp = ringflow_testkit::temp_dir("stats-dir");
        let file = tmp.path().join("not-a-dir");
        std::fs::write(&file, b"").unwrap();
        assert!(runtime_dir(Some(&file)).is_err());
        match bound_names(&file) {
            Err(e @ BoundNamesError::RuntimeDir(_)) => {
                use std::error::Error as _;
                assert!(e.source().and_then(|s| s.downcast_ref::<DirError>()).is_some(), "{e:?}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(bound_names(tmp.path()).unwrap(), Vec::<String>::new());
    }
}
