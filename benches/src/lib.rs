//! The benchmark harness behind `ringflow bench`: scenarios of cases, each
//! measured with ringflow, its peers and the physical limit in the same run,
//! on two pinned threads, into HDR histograms; reported as a table or JSON
//! lines with each impl's ratio to the limit and a summary in words, and
//! on request as HdrHistogram interval logs and one SVG plot (written
//! after the run, never while measuring).
//!
//! Nothing printed is ever estimated or hard-coded: every figure is measured
//! in the run that prints it. Checks against targets are informational and
//! never fail a run.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "peers")]
mod async_pingpong;
mod error;
mod fanout;
mod flow;
mod flows_fanout;
pub mod footprint;
mod framing;
mod futex_limit;
mod group;
mod group_remote;
#[cfg(feature = "peers")]
mod group_remote_tokio;
mod harness;
mod hdr_log;
mod limit;
mod measure;
mod memory;
mod meta;
mod os;
mod pair;
#[cfg(any(feature = "peers", feature = "iceoryx2"))]
mod peers;
mod pin;
mod pingpong;
mod plot;
pub mod processes;
mod remote;
mod report;
mod report_dir;
mod ringflow;
mod rpc;
mod scenario;
pub mod scenarios;
mod set_wake;
mod stream;
mod summary;
mod wire;

pub use error::BenchError;
pub use harness::{run, Mode, Options};
pub use measure::{Measurement, RunCtx};
pub use memory::{Heap, RingMemory};
pub use meta::RunMeta;
pub use pin::Pins;
pub use report::{CaseHistogram, CheckResult, Failure, Record, ScenarioReport};
pub use report_dir::{run_into_dir, DEFAULT_DIR};
pub use scenario::{Case, CheckSpec, Impl, Metric, Scenario, Stat, Target, LIMIT};
