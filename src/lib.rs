//! ringflow: a lock-free shared-memory and io_uring message transport for
//! latency-sensitive services. This facade re-exports the public API
//! (`ringflow-api`), and nothing else: the `ringflow` command (benchmarks,
//! engine, doctor, stat) is the package `ringflow-cli` (`cli/`).

#![deny(missing_docs)]

pub use ringflow_api::*;

// The README's example is compiled and run as a doctest, so it stays true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
