//! [`EngineConfigBuilder`]: the configuration in code, one method per key.
//!
//! Each method turns its argument into the same raw value a TOML file or a
//! variable would give and stores it through the key table, so a value the
//! file form refuses is refused here too, with the same message. The first
//! refusal is kept and returned by [`EngineConfigBuilder::build`], which
//! then checks the keys against each other. It never panics on a bad value.

use super::error::{BadValue, ConfigError, Origin, UnknownKey, WrongType};
use super::keys::{self, KeySpec, Raw};
use super::validate::{self, Problem};
use super::{CrossingGroup, EngineConfig, IdleStrategy, NetBackend, ThreadingMode};
use crate::group::Guarantee;

/// Builds an [`EngineConfig`]; start with [`EngineConfig::builder`] or
/// [`EngineConfig::to_builder`]. Each method names the key it sets.
#[derive(Debug)]
pub struct EngineConfigBuilder {
    draft: EngineConfig,
    /// The first value refused, returned by `build`.
    error: Option<ConfigError>,
}

impl EngineConfigBuilder {
    pub(crate) fn from_config(draft: EngineConfig) -> EngineConfigBuilder {
        EngineConfigBuilder { draft, error: None }
    }

    /// Checks `raw` against `spec` and stores it, remembering `origin`.
    /// `given` is the value as the user wrote it, for messages.
    pub(crate) fn apply(
        &mut self,
        index: usize,
        spec: &KeySpec,
        raw: &Raw,
        given: &str,
        origin: Origin,
    ) -> Result<(), ConfigError> {
        match validate::check(spec.kind, raw) {
            Ok(()) => {
                (spec.set)(&mut self.draft, raw);
                if let Some(slot) = self.draft.origins.get_mut(index) {
                    *slot = origin;
                }
                Ok(())
            }
            Err(Problem::WrongType) => Err(WrongType {
                key: spec.path.to_owned(),
                expected: spec.kind.expected(),
                // A variable's value is text whatever the key's type: no type name to report.
                found: if matches!(origin, Origin::Env { .. }) {
                    given.to_owned()
                } else {
                    format!("{} {given}", raw.type_name())
                },
                allowed: spec.kind.allowed(),
                origin,
            }
            .into()),
            Err(Problem::Bad(reason)) => Err(BadValue {
                key: spec.path.to_owned(),
                value: given.to_owned(),
                allowed: spec.kind.allowed(),
                reason,
                origin,
            }
            .into()),
        }
    }

    /// Sets `path` from code, keeping the first error.
    fn set(mut self, path: &'static str, raw: Raw) -> Self {
        if self.error.is_some() {
            return self;
        }
        let result = match keys::find(path) {
            Some((index, spec)) => self.apply(index, spec, &raw, &raw.to_toml(), Origin::Builder),
            None => Err(UnknownKey {
                key: path.to_owned(),
                origin: Origin::Builder,
                allowed: EngineConfig::key_paths().map(str::to_owned).collect(),
            }
            .into()),
        };
        self.error = result.err();
        self
    }

    /// `engine.threads`: engine threads, 1..=64.
    pub fn threads(self, threads: usize) -> Self {
        self.set(keys::ENGINE_THREADS, int(threads))
    }

    /// `engine.cores`: the CPU of each engine thread; empty for no pinning.
    pub fn cores(self, cores: impl IntoIterator<Item = usize>) -> Self {
        self.set(keys::ENGINE_CORES, Raw::List(cores.into_iter().map(int).collect()))
    }

    /// `engine.mode`.
    pub fn mode(self, mode: ThreadingMode) -> Self {
        self.set(keys::ENGINE_MODE, Raw::Str(mode.name().to_owned()))
    }

    /// `engine.idle`; a `Backoff` also sets `engine.backoff.*` (its park
    /// truncated to whole microseconds, as the file holds it).
    pub fn idle(self, idle: IdleStrategy) -> Self {
        let this = self.set(keys::ENGINE_IDLE, Raw::Str(idle.name().to_owned()));
        match idle {
            IdleStrategy::Backoff { spins, yields, park } => this
                .backoff_spins(spins)
                .backoff_yields(yields)
                .backoff_park_us(u64::try_from(park.as_micros()).unwrap_or(u64::MAX)),
            IdleStrategy::Spin | IdleStrategy::Park => this,
        }
    }

    /// `engine.backoff.spins`: polls before yielding.
    pub fn backoff_spins(self, spins: u32) -> Self {
        self.set(keys::BACKOFF_SPINS, int(spins))
    }

    /// `engine.backoff.yields`: yields before parking.
    pub fn backoff_yields(self, yields: u32) -> Self {
        self.set(keys::BACKOFF_YIELDS, int(yields))
    }

    /// `engine.backoff.park_us`: longest single park, in microseconds.
    pub fn backoff_park_us(self, micros: u64) -> Self {
        self.set(keys::BACKOFF_PARK_US, int(micros))
    }

    /// `io_uring.entries`: submission queue size, a power of two.
    pub fn entries(self, entries: u32) -> Self {
        self.set(keys::URING_ENTRIES, int(entries))
    }

    /// `io_uring.single_issuer`.
    pub fn single_issuer(self, on: bool) -> Self {
        self.set(keys::URING_SINGLE_ISSUER, Raw::Bool(on))
    }

    /// `io_uring.defer_taskrun`.
    pub fn defer_taskrun(self, on: bool) -> Self {
        self.set(keys::URING_DEFER_TASKRUN, Raw::Bool(on))
    }

    /// `io_uring.coop_taskrun`.
    pub fn coop_taskrun(self, on: bool) -> Self {
        self.set(keys::URING_COOP_TASKRUN, Raw::Bool(on))
    }

    /// `io_uring.sqpoll`.
    pub fn sqpoll(self, on: bool) -> Self {
        self.set(keys::URING_SQPOLL, Raw::Bool(on))
    }

    /// `io_uring.sqpoll_core`: the SQ thread's CPU; `None` leaves it unpinned.
    pub fn sqpoll_core(self, core: Option<usize>) -> Self {
        self.set(keys::URING_SQPOLL_CORE, core.map_or_else(|| Raw::Str(keys::NONE.to_owned()), int))
    }

    /// `io_uring.sqpoll_idle_ms`.
    pub fn sqpoll_idle_ms(self, millis: u32) -> Self {
        self.set(keys::URING_SQPOLL_IDLE_MS, int(millis))
    }

    /// `io_uring.registered_buffers`.
    pub fn registered_buffers(self, count: u32) -> Self {
        self.set(keys::URING_REGISTERED_BUFFERS, int(count))
    }

    /// `io_uring.provided_buffers`: a power of two.
    pub fn provided_buffers(self, count: u32) -> Self {
        self.set(keys::URING_PROVIDED_BUFFERS, int(count))
    }

    /// `io_uring.buffer_size`: bytes per registered or provided buffer.
    pub fn buffer_size(self, bytes: usize) -> Self {
        self.set(keys::URING_BUFFER_SIZE, int(bytes))
    }

    /// `io_uring.send_zc_threshold`: bytes; 0 never uses SEND_ZC.
    pub fn send_zc_threshold(self, bytes: usize) -> Self {
        self.set(keys::URING_SEND_ZC_THRESHOLD, int(bytes))
    }

    /// `io_uring.batch`: frames per submission.
    pub fn batch(self, frames: u32) -> Self {
        self.set(keys::URING_BATCH, int(frames))
    }

    /// `net.listen`: `"host:port"`, or `None` to accept no remote flows.
    pub fn listen(self, addr: Option<&str>) -> Self {
        self.set(keys::NET_LISTEN, Raw::Str(addr.unwrap_or(keys::NONE).to_owned()))
    }

    /// `net.peers`: `"host:port"` or `"name@host:port"` each.
    pub fn peers<S: AsRef<str>>(self, peers: impl IntoIterator<Item = S>) -> Self {
        self.set(keys::NET_PEERS, Raw::List(peers.into_iter().map(|p| Raw::Str(p.as_ref().to_owned())).collect()))
    }

    /// `net.backend`.
    pub fn backend(self, backend: NetBackend) -> Self {
        self.set(keys::NET_BACKEND, Raw::Str(backend.name().to_owned()))
    }

    /// `net.memory_budget`, in bytes.
    pub fn memory_budget(self, bytes: usize) -> Self {
        self.set(keys::NET_MEMORY_BUDGET, Raw::Int(bytes as i128))
    }

    /// `net.key_file`: the engines' pre-shared key, or `None` for no key.
    pub fn key_file(self, path: Option<&std::path::Path>) -> Self {
        let raw = path.map_or_else(|| keys::NONE.to_owned(), |p| p.display().to_string());
        self.set(keys::NET_KEY_FILE, Raw::Str(raw))
    }

    /// `net.hello_timeout_ms`: how long a connection may take over its hello.
    pub fn hello_timeout_ms(self, millis: u64) -> Self {
        self.set(keys::NET_HELLO_TIMEOUT_MS, int(millis))
    }

    /// `net.max_hellos`: connections in their hello at once.
    pub fn max_hellos(self, count: usize) -> Self {
        self.set(keys::NET_MAX_HELLOS, int(count))
    }

    /// `cluster.enabled`: the engine runs a cluster node.
    pub fn cluster(self, enabled: bool) -> Self {
        self.set(keys::CLUSTER_ENABLED, Raw::Bool(enabled))
    }

    /// `cluster.tick_ms`: one raft tick.
    pub fn cluster_tick_ms(self, millis: u64) -> Self {
        self.set(keys::CLUSTER_TICK_MS, int(millis))
    }

    /// `cluster.election_ticks`.
    pub fn cluster_election_ticks(self, ticks: usize) -> Self {
        self.set(keys::CLUSTER_ELECTION_TICKS, int(ticks))
    }

    /// `cluster.heartbeat_ticks`.
    pub fn cluster_heartbeat_ticks(self, ticks: usize) -> Self {
        self.set(keys::CLUSTER_HEARTBEAT_TICKS, int(ticks))
    }

    /// `cluster.compact_after`: applied entries held before compaction.
    pub fn cluster_compact_after(self, entries: u64) -> Self {
        self.set(keys::CLUSTER_COMPACT_AFTER, int(entries))
    }

    /// `cluster.compact_after_bytes`: bytes of applied entries held before
    /// those every node holds are compacted.
    pub fn cluster_compact_after_bytes(self, bytes: usize) -> Self {
        self.set(keys::CLUSTER_COMPACT_AFTER_BYTES, int(bytes))
    }

    /// `cluster.node_timeout_ms`: silence before the leader proposes a
    /// node down.
    pub fn cluster_node_timeout_ms(self, millis: u64) -> Self {
        self.set(keys::CLUSTER_NODE_TIMEOUT_MS, int(millis))
    }

    /// `cluster.max_message_bytes`.
    pub fn cluster_max_message_bytes(self, bytes: usize) -> Self {
        self.set(keys::CLUSTER_MAX_MESSAGE_BYTES, int(bytes))
    }

    /// `cluster.group_intake_bytes`: the members' message bytes a crossing
    /// group's gateway holds at most before they are committed.
    pub fn cluster_group_intake_bytes(self, bytes: usize) -> Self {
        self.set(keys::CLUSTER_GROUP_INTAKE_BYTES, int(bytes))
    }

    /// `cluster.groups`: the groups whose members live on several hosts,
    /// in place of those set before; each `"name"` (the group's
    /// guarantee as the engine finds it) or `"name:guarantee"`, as in
    /// the file.
    pub fn cluster_groups<S: AsRef<str>>(self, groups: impl IntoIterator<Item = S>) -> Self {
        self.set(keys::CLUSTER_GROUPS, Raw::List(groups.into_iter().map(|g| Raw::Str(g.as_ref().to_owned())).collect()))
    }

    /// Adds group `name` to `cluster.groups`, with `guarantee` on every
    /// host (the entry `"name:guarantee"`).
    pub fn cluster_group(self, name: &str, guarantee: Guarantee) -> Self {
        let mut entries: Vec<Raw> = self.draft.cluster.groups.iter().map(|g| Raw::Str(g.to_string())).collect();
        entries.push(Raw::Str(CrossingGroup::with_guarantee(name, guarantee).to_string()));
        self.set(keys::CLUSTER_GROUPS, Raw::List(entries))
    }

    /// `flow.ring_bytes`: a power of two.
    pub fn ring_bytes(self, bytes: usize) -> Self {
        self.set(keys::FLOW_RING_BYTES, int(bytes))
    }

    /// `flow.max_msg`.
    pub fn max_msg(self, bytes: usize) -> Self {
        self.set(keys::FLOW_MAX_MSG, int(bytes))
    }

    /// `flow.spin_us`.
    pub fn spin_us(self, micros: u64) -> Self {
        self.set(keys::FLOW_SPIN_US, int(micros))
    }

    /// `flow.latency`.
    pub fn latency(self, on: bool) -> Self {
        self.set(keys::FLOW_LATENCY, Raw::Bool(on))
    }

    /// `flow.prefault`.
    pub fn prefault(self, on: bool) -> Self {
        self.set(keys::FLOW_PREFAULT, Raw::Bool(on))
    }

    /// The configuration, or the first value refused, or the first pair of
    /// keys that cannot go together.
    pub fn build(self) -> Result<EngineConfig, ConfigError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        validate::cross_check(&self.draft)?;
        Ok(self.draft)
    }
}

/// Every unsigned integer type the methods take fits in an `i128`; the
/// saturation is never reached.
fn int(n: impl TryInto<i128>) -> Raw {
    Raw::Int(n.try_into().unwrap_or(i128::MAX))
}
