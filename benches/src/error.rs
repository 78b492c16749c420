//! The one error type of the harness: every way a benchmark run can fail,
//! each with its own variant so the CLI can say plainly what went wrong.

use std::fmt;
use std::path::PathBuf;

/// Why a benchmark (or one impl of one case) could not be measured.
#[derive(Debug)]
pub enum BenchError {
    /// `ringflow bench <name>` named no registered scenario.
    UnknownScenario { name: String, known: Vec<&'static str> },
    /// A thread could not be pinned to its core.
    Pin { core: usize },
    /// A ringflow ring could not be laid out or attached.
    Attach(ringflow_ring::AttachError),
    /// A ringflow claim failed for a reason other than a full ring.
    Claim(ringflow_ring::ClaimError),
    /// A ringflow read failed for a reason other than an empty ring.
    Read(ringflow_ring::ReadError),
    /// A peer's channel reported its other end gone mid-run.
    Disconnected { what: &'static str },
    /// A message arrived out of order or an echo did not match.
    Protocol { expected: u64, got: u64 },
    /// An impl returned another number of measurements than it has names.
    Variants { expected: usize, got: usize },
    /// The run made no progress before its hard deadline (a lost message).
    Stalled,
    /// This side stopped because the other side failed.
    Aborted,
    /// A benchmark thread panicked.
    Panicked { side: &'static str },
    /// The latency histogram could not be created.
    Histogram(String),
    /// Writing the report failed.
    Io(std::io::Error),
    /// A system call of an OS transport failed (set-up or mid-run).
    Os { call: &'static str, source: std::io::Error },
    /// A peer library's call failed (set-up or mid-run), with its message.
    Peer { call: &'static str, error: String },
    /// A file or directory of the run's output (report directory, interval
    /// logs, plot) could not be created or written.
    Output { path: PathBuf, source: std::io::Error },
    /// An interval log could not be written.
    IntervalLog { path: PathBuf, source: ringflow_api::stats::IntervalLogError },
    /// The plot could not be drawn.
    Plot(String),
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::UnknownScenario { name, known } => {
                write!(f, "unknown scenario `{name}` (known: {})", known.join(", "))
            }
            BenchError::Pin { core } => write!(f, "could not pin a benchmark thread to core {core}"),
            BenchError::Attach(e) => write!(f, "ring attach: {e}"),
            BenchError::Claim(e) => write!(f, "ring claim: {e}"),
            BenchError::Read(e) => write!(f, "ring read: {e}"),
            BenchError::Disconnected { what } => write!(f, "{what}: other end disconnected mid-run"),
            BenchError::Protocol { expected, got } => {
                write!(f, "message out of order: expected sequence {expected}, got {got}")
            }
            BenchError::Variants { expected, got } => {
                write!(f, "the impl measured {got} variants, but names {expected}")
            }
            BenchError::Stalled => write!(f, "no progress before the run's hard deadline (message lost?)"),
            BenchError::Aborted => write!(f, "stopped because the other side failed"),
            BenchError::Panicked { side } => write!(f, "the {side} thread panicked"),
            BenchError::Histogram(e) => write!(f, "histogram: {e}"),
            BenchError::Io(e) => write!(f, "writing the report: {e}"),
            BenchError::Os { call, source } => write!(f, "{call}: {source}"),
            BenchError::Peer { call, error } => write!(f, "{call}: {error}"),
            BenchError::Output { path, source } => write!(f, "writing {}: {source}", path.display()),
            BenchError::IntervalLog { path, source } => write!(f, "{}: {source}", path.display()),
            BenchError::Plot(e) => write!(f, "drawing the plot: {e}"),
        }
    }
}

impl std::error::Error for BenchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BenchError::Attach(e) => Some(e),
            BenchError::Claim(e) => Some(e),
            BenchError::Read(e) => Some(e),
            BenchError::Io(e) => Some(e),
            BenchError::Os { source, .. } => Some(source),
            BenchError::Output { source, .. } => Some(source),
            BenchError::IntervalLog { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<ringflow_ring::AttachError> for BenchError {
    fn from(e: ringflow_ring::AttachError) -> Self {
        BenchError::Attach(e)
    }
}

impl From<ringflow_ring::ClaimError> for BenchError {
    fn from(e: ringflow_ring::ClaimError) -> Self {
        BenchError::Claim(e)
    }
}

impl From<ringflow_ring::ReadError> for BenchError {
    fn from(e: ringflow_ring::ReadError) -> Self {
        BenchError::Read(e)
    }
}

impl From<std::io::Error> for BenchError {
    fn from(e: std::io::Error) -> Self {
        BenchError::Io(e)
    }
}
