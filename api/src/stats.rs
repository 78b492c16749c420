//! Latency histograms and live statistics: the switches, the reader of
//! other processes' statistics, and (feature `interval-log`) the standard
//! HdrHistogram interval-log format, so that existing tools
//! (HistogramLogAnalyzer, hdr-plot, the `hdrhistogram` crate itself) read
//! what ringflow recorded.
//!
//! A flow's counters and histograms come from [`Flow::stats`](crate::Flow::stats);
//! histograms are `hdrhistogram::Histogram<u64>` in nanoseconds (3
//! significant digits, 1 ns ..= 68.7 s), so they merge with
//! [`Histogram::add`] and reset with [`Flow::reset_latency`](crate::Flow::reset_latency).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use hdrhistogram::Histogram;
#[cfg(feature = "interval-log")]
pub use interval_log::*;

#[cfg(feature = "interval-log")]
mod interval_log;
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
