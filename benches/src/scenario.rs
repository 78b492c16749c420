//! What a scenario is: named cases, each measured with several impls (one of
//! them always the physical limit), plus the acceptance checks computed from
//! a run. Scenarios are data; running and reporting live elsewhere.

use crate::error::BenchError;
use crate::measure::{Measurement, RunCtx};

/// The name of the physical-limit impl every case includes.
pub const LIMIT: &str = "limit";

/// What a case's headline figure is, and so what its ratio compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Lower p50 is better; ratio = p50 / limit p50.
    Latency,
    /// Higher msgs/s is better; ratio = msgs/s / limit msgs/s.
    Throughput,
}

impl Metric {
    /// Name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Latency => "latency",
            Metric::Throughput => "throughput",
        }
    }
}

/// How an impl measures one case: one measurement per name it reports.
pub type RunFn = Box<dyn Fn(&RunCtx) -> Result<Vec<Measurement>, BenchError>>;

/// One implementation measured in a case, or several variants of one
/// measured in the same run, taking turns ([`Impl::alternating`]).
pub struct Impl {
    /// The name of its (first) measurement.
    pub name: &'static str,
    /// The names of the other variants measured in the same run, in the
    /// order `run` returns their measurements after the first.
    pub also: &'static [&'static str],
    pub run: RunFn,
}

impl Impl {
    /// An impl named `name` measured by `run`.
    pub fn new(name: &'static str, run: impl Fn(&RunCtx) -> Result<Measurement, BenchError> + 'static) -> Self {
        Impl { name, also: &[], run: Box::new(move |ctx| run(ctx).map(|m| vec![m])) }
    }

    /// Variants of one impl measured in one run, alternating block by
    /// block (see `pingpong::run_alternating`): `run` returns one
    /// measurement per name, in this order. For comparing variants whose
    /// difference is smaller than the machine's drift between runs.
    pub fn alternating(
        names: &'static [&'static str],
        run: impl Fn(&RunCtx) -> Result<Vec<Measurement>, BenchError> + 'static,
    ) -> Self {
        assert!(!names.is_empty(), "at least one variant");
        Impl { name: names[0], also: &names[1..], run: Box::new(run) }
    }

    /// Every name this impl reports, its own first.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        std::iter::once(self.name).chain(self.also.iter().copied())
    }

    /// Runs it once, checking it returned one measurement per name.
    pub fn measure(&self, ctx: &RunCtx) -> Result<Vec<Measurement>, BenchError> {
        let m = (self.run)(ctx)?;
        let names = self.names().count();
        if m.len() != names {
            return Err(BenchError::Variants { expected: names, got: m.len() });
        }
        Ok(m)
    }

    /// The label of its progress lines: its names joined by `+`.
    pub fn label(&self) -> String {
        self.names().collect::<Vec<_>>().join("+")
    }
}

/// One measured situation, e.g. `pingpong-64B`.
pub struct Case {
    pub name: &'static str,
    pub about: &'static str,
    pub metric: Metric,
    /// Run in this order; include one named [`LIMIT`], first. A case with
    /// no physical limit to measure puts its reference first instead (see
    /// [`Case::reference`]) and says so in its notes.
    pub impls: Vec<Impl>,
    /// Said in the report (e.g. impls not built in).
    pub notes: Vec<String>,
}

impl Case {
    /// The impl every ratio of this case divides by: the one named
    /// [`LIMIT`], or, in a case without one, its first impl (e.g. the
    /// kernel's floor, when the transport crosses the kernel anyway).
    pub fn reference(&self) -> &'static str {
        match self.impls.iter().find(|i| i.name == LIMIT) {
            Some(limit) => limit.name,
            None => self.impls.first().map_or(LIMIT, |i| i.name),
        }
    }
}

/// Which figure a check divides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    P50,
    MsgsPerSec,
}

impl Stat {
    /// Name used in check lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Stat::P50 => "p50",
            Stat::MsgsPerSec => "msgs/s",
        }
    }
}

/// The bound a check's ratio must meet.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    AtMost(f64),
    AtLeast(f64),
}

impl Target {
    /// Whether `value` meets the bound.
    pub fn met_by(self, value: f64) -> bool {
        match self {
            Target::AtMost(t) => value <= t,
            Target::AtLeast(t) => value >= t,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::AtMost(t) => write!(f, "<= {t}"),
            Target::AtLeast(t) => write!(f, ">= {t}"),
        }
    }
}

/// An acceptance check: `case`: `num` stat / `den` stat against `target`.
/// Informational: a failed check is reported, never an error.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CheckSpec {
    pub case: &'static str,
    pub num: &'static str,
    /// An impl of `case`, or `"<case>/<impl>"` for an impl of another case
    /// (a ratio across cases, e.g. large messages against small ones).
    pub den: &'static str,
    pub stat: Stat,
    pub target: Target,
}

impl CheckSpec {
    /// The (case, impl) whose figure is the denominator.
    pub fn den_case_impl(&self) -> (&'static str, &'static str) {
        self.den.split_once('/').unwrap_or((self.case, self.den))
    }
}

/// A named group of cases (`ringflow bench <name>`).
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    /// Builds the cases (and their impls) to run.
    pub cases: fn() -> Vec<Case>,
    pub checks: &'static [CheckSpec],
}
