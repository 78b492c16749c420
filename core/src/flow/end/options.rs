//! A flow's settings beyond its QoS.

use std::path::PathBuf;
use std::time::Duration;

use crate::control::RuntimeDir;
use ringflow_shm::Segment;

/// Settings of a flow beyond its QoS.
#[derive(Debug, Default)]
pub struct FlowOptions {
    pub(crate) spin: Option<Duration>,
    pub(crate) runtime_dir: Option<DirChoice>,
    pub(crate) memory: Option<Segment>,
    pub(crate) latency: Option<bool>,
    pub(crate) prefault: Option<bool>,
    /// The name a pair's ends are listed under (default "(pair)").
    pub(crate) name: Option<String>,
    /// The flow comes from another host (an engine allocates it for a
    /// remote open): the listener admits it only if it takes remote flows.
    pub(crate) from_other_host: bool,
}

impl FlowOptions {
    /// Defaults: spin [`DEFAULT_SPIN`](super::DEFAULT_SPIN), the per-user runtime directory, a
    /// new memfd for the rings.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a blocking operation spins before it parks on a futex
    /// (zero: park at once).
    #[must_use]
    pub fn spin(mut self, spin: Duration) -> Self {
        self.spin = Some(spin);
        self
    }

    /// Where names live (default: `$RINGFLOW_RUNTIME_DIR`, else
    /// `$XDG_RUNTIME_DIR/ringflow`, else `$TMPDIR/ringflow-<uid>` with
    /// `/tmp` for an unset `TMPDIR`).
    #[must_use]
    pub fn runtime_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.runtime_dir = Some(DirChoice { path: dir.into(), shared: false });
        self
    }

    /// Looks the name up in a runtime directory shared between users (see
    /// [`RuntimeDir::shared`]): an existing directory that nobody but its
    /// owner can write, which may be another user's (naming it trusts that
    /// user). The listener's `Permit` must admit this process's uid or one
    /// of its groups. This process's statistics for the flow are published
    /// only if it may write there (`ringflow stat` of that directory).
    #[must_use]
    pub fn shared_runtime_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.runtime_dir = Some(DirChoice { path: dir.into(), shared: true });
        self
    }

    /// Lays the flow's rings out in caller-supplied memory (libdill's `_mem`
    /// idea): a fresh segment from [`Segment::create`], for example on huge
    /// pages. It must be large enough for the granted QoS
    /// (`Flow::segment_len_for`). The accepting side may supply the memory
    /// of the direction it receives on (`ListenerOptions::memory`); this
    /// segment then holds the rest of the flow.
    #[must_use]
    pub fn memory(mut self, segment: Segment) -> Self {
        self.memory = Some(segment);
        self
    }

    /// Whether this flow records the one-way latency of every message it
    /// receives and stamps every message it sends (default: on, unless
    /// `RINGFLOW_FLOW_LATENCY=false` or `ringflow::stats::set_latency_default`).
    /// Off saves two clock readings per message (their cost: tuning.md,
    /// "Latency histograms").
    #[must_use]
    pub fn latency(mut self, on: bool) -> Self {
        self.latency = Some(on);
        self
    }

    /// Whether this side faults the flow's rings in at setup (default: on,
    /// unless `RINGFLOW_FLOW_PREFAULT=false` or
    /// `ringflow_core::flow::memory::set_prefault_default`): on, the first
    /// messages take no page fault; off, a flow's rings become resident as
    /// messages reach their pages, which suits many mostly idle flows. The
    /// bulk area is touched lazily either way. Its measured effect:
    /// tuning.md, "Prefaulted rings".
    #[must_use]
    pub fn prefault(mut self, on: bool) -> Self {
        self.prefault = Some(on);
        self
    }

    /// Lists a pair's ends under `name` (the engine names its ends after
    /// the remote flow).
    pub(crate) fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Marks the flow as one for another host's open (see `from_other_host`).
    pub(crate) fn for_other_host(mut self) -> Self {
        self.from_other_host = true;
        self
    }

    pub(crate) fn dir(&self) -> Result<RuntimeDir, crate::control::DirError> {
        match &self.runtime_dir {
            Some(choice) => choice.open(),
            None => RuntimeDir::resolve(),
        }
    }
}

/// A runtime directory an option names: private (checked, created if
/// missing: [`RuntimeDir::at`]) or shared between users
/// ([`RuntimeDir::shared`]).
#[derive(Clone, Debug)]
pub(crate) struct DirChoice {
    pub path: PathBuf,
    pub shared: bool,
}

impl DirChoice {
    /// Checks (and for a private one, creates) the directory.
    pub(crate) fn open(&self) -> Result<RuntimeDir, crate::control::DirError> {
        if self.shared {
            RuntimeDir::shared(self.path.clone())
        } else {
            RuntimeDir::at(self.path.clone())
        }
    }
}
