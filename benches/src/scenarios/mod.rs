//! The registry of scenarios, by name.
//!
//! To add a scenario: write `scenarios/<name>.rs` with a
//! `pub fn scenario() -> Scenario` (cases, each with a `limit` impl first and
//! the others after, plus its checks), declare the module here and add it to
//! [`all`]. The harness, report, JSON and CLI pick it up by name.

pub mod flow;
pub mod remote;
pub mod ring;

use crate::scenario::Scenario;

/// Every scenario, in the order `ringflow bench` runs them.
pub fn all() -> Vec<Scenario> {
    vec![ring::scenario(), flow::scenario(), remote::scenario()]
}

/// The names of all scenarios.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|s| s.name).collect()
}
