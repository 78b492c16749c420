//! The engine's configuration: one [`EngineConfig`], built three ways that
//! map 1:1 — [`EngineConfig::builder`] in code, a TOML file
//! (`ringflow.toml`, see the documented copy at the repository root) and
//! `RINGFLOW_*` environment overrides, one variable per key
//! (`engine.threads` → `RINGFLOW_ENGINE_THREADS`, lists comma-separated).
//!
//! Every key lives in one table (`keys`) that all three forms go through,
//! so a key exists in all of them or in none, and a value is checked by the
//! same rule whichever way it came. Unknown keys and bad values are refused
//! with the key, the value as given, what is allowed and where it came from.
//! This module never panics on any input, never resolves host names and
//! never mutates the process environment.
//!
//! Defaults suit a 2-core laptop: one dedicated engine thread, unpinned,
//! that parks after a short backoff; nothing spins unless asked.

mod addr;
mod builder;
mod crossing;
mod env;
pub(crate) use env::parse_bool as parse_env_bool;
mod error;
mod keys;
mod parse;
mod validate;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use addr::{AddrError, HostPort, Peer};
pub use builder::EngineConfigBuilder;
pub use crossing::CrossingGroup;
pub use env::process_vars;
pub use error::{BadValue, ConfigError, Conflict, Origin, UnknownKey, WrongType};
pub use validate::configured_cpus;

/// Prefix of the override variables. A variable with this prefix that names
/// no key is an error, except [`CONFIG_ENV`], [`LOG_ENV`], `RINGFLOW_RUNTIME_DIR`
/// and `RINGFLOW_TEST_*`, which other parts of ringflow read.
pub const ENV_PREFIX: &str = "RINGFLOW_";
/// The variable naming the configuration file that [`EngineConfig::load`] reads.
pub const CONFIG_ENV: &str = "RINGFLOW_CONFIG";
/// The variable holding the `ringflow` command's log filter (a
/// `tracing-subscriber` `EnvFilter`); no configuration key.
pub const LOG_ENV: &str = "RINGFLOW_LOG";

/// Who runs the engine's duty cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ThreadingMode {
    /// The engine runs its own threads (`engine.threads` of them).
    #[default]
    Dedicated,
    /// No engine thread: the application's thread runs the duty cycle when
    /// it calls send/recv (Aeron's INVOKER). Least overhead on a small host;
    /// the engine makes progress only while the application calls in.
    Invoker,
}

impl ThreadingMode {
    /// The word used in TOML and the environment.
    pub fn name(self) -> &'static str {
        match self {
            ThreadingMode::Dedicated => "dedicated",
            ThreadingMode::Invoker => "invoker",
        }
    }
}

/// How an engine drives its sockets (`net.backend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NetBackend {
    /// io_uring when this host lets the engine use it, else plain sockets
    /// (and the engine says why).
    #[default]
    Auto,
    /// io_uring or nothing: an engine that cannot set it up does not start,
    /// and says why and how to fix it.
    IoUring,
    /// Plain nonblocking sockets and epoll, even where io_uring works.
    Sockets,
}

impl NetBackend {
    /// The word used in TOML and the environment.
    pub fn name(self) -> &'static str {
        match self {
            NetBackend::Auto => "auto",
            NetBackend::IoUring => "io_uring",
            NetBackend::Sockets => "sockets",
        }
    }
}

/// What an engine thread does when a pass over its work found nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleStrategy {
    /// Poll again at once: lowest latency, one CPU fully busy per thread.
    Spin,
    /// Spin `spins` times, then yield the CPU `yields` times, then park for
    /// at most `park` (a wakeup ends the park sooner), and repeat.
    Backoff {
        /// Polls with a spin-loop hint before yielding.
        spins: u32,
        /// `sched_yield` calls before parking.
        yields: u32,
        /// Longest single park, in whole microseconds.
        park: Duration,
    },
    /// Park at once until woken: no CPU while idle, a wakeup's latency on
    /// every message after a quiet spell.
    Park,
}

impl IdleStrategy {
    /// The word used in TOML and the environment.
    pub fn name(self) -> &'static str {
        match self {
            IdleStrategy::Spin => "spin",
            IdleStrategy::Backoff { .. } => "backoff",
            IdleStrategy::Park => "park",
        }
    }
}

/// The steps of [`IdleStrategy::Backoff`] (`engine.backoff.*`), kept even
/// when another strategy is chosen so that overriding `engine.idle` alone
/// still finds them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffSteps {
    /// `engine.backoff.spins`.
    pub spins: u32,
    /// `engine.backoff.yields`.
    pub yields: u32,
    /// `engine.backoff.park_us`.
    pub park: Duration,
}

impl BackoffSteps {
    /// These steps as a strategy.
    pub fn strategy(self) -> IdleStrategy {
        IdleStrategy::Backoff { spins: self.spins, yields: self.yields, park: self.park }
    }
}

/// `[engine]`: threads, pinning, mode and idle strategy.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EngineSection {
    /// `engine.threads`: engine threads, each with its own io_uring.
    pub threads: usize,
    /// `engine.cores`: the CPU each engine thread is pinned to, by index;
    /// empty for no pinning.
    pub cores: Vec<usize>,
    /// `engine.mode`.
    pub mode: ThreadingMode,
    /// `engine.idle`, carrying [`EngineSection::backoff`] when it is `Backoff`.
    pub idle: IdleStrategy,
    /// `engine.backoff.*`.
    pub backoff: BackoffSteps,
}

impl EngineSection {
    /// Keeps `idle` carrying the current backoff steps.
    fn sync_idle(&mut self) {
        if let IdleStrategy::Backoff { .. } = self.idle {
            self.idle = self.backoff.strategy();
        }
    }
}

/// `[io_uring]`: ring size, setup flags and buffers of each engine thread's ring.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct IoUringSection {
    /// `io_uring.entries`: submission queue entries.
    pub entries: u32,
    /// `io_uring.single_issuer`: IORING_SETUP_SINGLE_ISSUER.
    pub single_issuer: bool,
    /// `io_uring.defer_taskrun`: IORING_SETUP_DEFER_TASKRUN.
    pub defer_taskrun: bool,
    /// `io_uring.coop_taskrun`: IORING_SETUP_COOP_TASKRUN.
    pub coop_taskrun: bool,
    /// `io_uring.sqpoll`: IORING_SETUP_SQPOLL.
    pub sqpoll: bool,
    /// `io_uring.sqpoll_core`: the CPU of the kernel's SQ thread (IORING_SETUP_SQ_AFF).
    pub sqpoll_core: Option<usize>,
    /// `io_uring.sqpoll_idle_ms`: how long the SQ thread polls before sleeping.
    pub sqpoll_idle: Duration,
    /// `io_uring.registered_buffers`: fixed buffers registered with the ring.
    pub registered_buffers: u32,
    /// `io_uring.provided_buffers`: entries of the provided-buffer ring for recv.
    pub provided_buffers: u32,
    /// `io_uring.buffer_size`: bytes of each registered and provided buffer.
    pub buffer_size: usize,
    /// `io_uring.send_zc_threshold`: writes of at least this many bytes use
    /// SEND_ZC; 0 never does.
    pub send_zc_threshold: usize,
    /// `io_uring.batch`: frames gathered into one submission at most.
    pub batch: u32,
}

impl IoUringSection {
    /// Send buffers an engine thread registers with its ring, given whether
    /// the kernel offers SEND_ZC: `registered_buffers` when SEND_ZC is on and
    /// `buffer_size` reaches its threshold (only SEND_ZC can send from a
    /// registered buffer; a plain send with one is EINVAL on 6.18), else 0.
    pub fn send_buffers_to_register(&self, send_zc_supported: bool) -> u32 {
        let on = send_zc_supported && self.send_zc_threshold > 0 && self.buffer_size >= self.send_zc_threshold;
        if on {
            self.registered_buffers
        } else {
            0
        }
    }
}

/// `[net]`: where the engine listens for remote engines, the ones it
/// knows, what a connection must do before it is trusted, and how much of
/// what other engines send it may hold.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetSection {
    /// `net.listen`; `None` accepts no remote flows (outgoing ones still work).
    pub listen: Option<HostPort>,
    /// `net.peers`.
    pub peers: Vec<Peer>,
    /// `net.backend`.
    pub backend: NetBackend,
    /// `net.memory_budget`: bytes of received data the engine holds for
    /// all connections together (frames not yet whole, messages waiting
    /// for room in a local ring); one connection may hold a quarter.
    pub memory_budget: usize,
    /// `net.key_file`: the pre-shared key engines prove to each other
    /// (`None`: no key; such an engine talks only to unkeyed ones).
    pub key_file: Option<PathBuf>,
    /// `net.hello_timeout_ms`: a connection that has not finished its hello
    /// (and proof of the key) this long after it opened is dropped.
    pub hello_timeout: Duration,
    /// `net.max_hellos`: connections in their hello at once; a new one
    /// beyond it drops the oldest.
    pub max_hellos: usize,
}

/// Default of `net.hello_timeout_ms`.
pub const DEFAULT_HELLO_TIMEOUT: Duration = Duration::from_secs(3);
/// Default of `net.max_hellos`.
pub const DEFAULT_MAX_HELLOS: usize = 128;
/// `net.memory_budget`'s default: 256 MiB.
pub const DEFAULT_MEMORY_BUDGET: usize = 256 << 20;

impl Default for NetSection {
    fn default() -> Self {
        NetSection {
            listen: None,
            peers: Vec::new(),
            backend: NetBackend::default(),
            memory_budget: DEFAULT_MEMORY_BUDGET,
            key_file: None,
            hello_timeout: DEFAULT_HELLO_TIMEOUT,
            max_hellos: DEFAULT_MAX_HELLOS,
        }
    }
}

/// `[cluster]`: the Raft node the engine runs with the other engines of
/// `net.peers` (feature `cluster` of ringflow-core; issue 17).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterSection {
    /// `cluster.enabled`: the engine runs a cluster node (needs
    /// `net.listen`: its address and the peers' number the nodes).
    pub enabled: bool,
    /// `cluster.tick_ms`: one raft tick.
    pub tick: Duration,
    /// `cluster.election_ticks`: ticks without a leader's word before a
    /// follower stands for election (raft randomises up to twice this).
    pub election_ticks: usize,
    /// `cluster.heartbeat_ticks`: ticks between a leader's heartbeats.
    pub heartbeat_ticks: usize,
    /// `cluster.compact_after`: applied entries held before the log is
    /// compacted into a snapshot.
    pub compact_after: u64,
    /// `cluster.compact_after_bytes`: bytes of applied entries held before
    /// those every node holds (up to the SAFE index) are compacted.
    pub compact_after_bytes: usize,
    /// `cluster.max_message_bytes`: the largest raft message taken from a
    /// peer (and made for one).
    pub max_message_bytes: usize,
    /// `cluster.node_timeout_ms`: how long the leader hears nothing from a
    /// node before it proposes the node down (its members leave every
    /// view with a node-down reason).
    pub node_timeout: Duration,
    /// `cluster.group_intake_bytes`: the bytes of its members' messages a
    /// crossing AGREED or SAFE group's gateway holds at most before they
    /// are committed; past it, it stops taking their submits (their local
    /// log fills and their multicasts wait, or return `WouldBlock`). At
    /// least `max_message_bytes`: a batch in flight and the next one
    /// gathering.
    pub group_intake_bytes: usize,
    /// `cluster.groups`: the groups whose members live on several hosts,
    /// each with the guarantee the engine gives it, if one is named.
    /// The engine joins each on this host as its gateway (issue 17) and
    /// carries its views and messages through the cluster.
    pub groups: Vec<CrossingGroup>,
}

/// `cluster.group_intake_bytes`' default: four of the largest raft message
/// `cluster.max_message_bytes` allows (a batch is at most half of one), so
/// at least eight batches, whatever that key says.
pub const DEFAULT_GROUP_INTAKE_BYTES: usize = 4 * crate::wire::MAX_CLUSTER_LEN as usize;

/// Longest name `cluster.groups` takes (what a cluster command carries).
pub const MAX_CLUSTER_GROUP_NAME: usize = 255;

impl Default for ClusterSection {
    fn default() -> Self {
        ClusterSection {
            enabled: false,
            tick: Duration::from_millis(10),
            election_ticks: 50,
            heartbeat_ticks: 5,
            compact_after: 1024,
            compact_after_bytes: 64 << 20,
            max_message_bytes: 1 << 20,
            node_timeout: Duration::from_millis(2000),
            group_intake_bytes: DEFAULT_GROUP_INTAKE_BYTES,
            groups: Vec::new(),
        }
    }
}

/// `[flow]`: defaults for flows that do not ask otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlowDefaults {
    /// `flow.ring_bytes`: ring bytes per direction.
    pub ring_bytes: usize,
    /// `flow.max_msg`: largest message.
    pub max_msg: usize,
    /// `flow.spin_us`: how long a blocking call spins before parking.
    pub spin: Duration,
    /// `flow.latency`: flows stamp what they send and record the one-way
    /// latency of what they receive.
    pub latency: bool,
    /// `flow.prefault`: flows fault their rings in at setup (no page fault
    /// on the first messages) instead of as messages reach them.
    pub prefault: bool,
}

/// The whole engine configuration. Only [`EngineConfigBuilder::build`], the
/// parsers and [`EngineConfig::default`] make one, so every value in it has
/// been checked.
#[derive(Clone)]
pub struct EngineConfig {
    engine: EngineSection,
    io_uring: IoUringSection,
    net: NetSection,
    flow: FlowDefaults,
    cluster: ClusterSection,
    /// Where each key's value came from, by index in `keys::KEYS`.
    origins: Vec<Origin>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        let backoff = BackoffSteps { spins: 100, yields: 10, park: Duration::from_micros(1_000) };
        EngineConfig {
            engine: EngineSection {
                threads: 1,
                cores: Vec::new(),
                mode: ThreadingMode::Dedicated,
                idle: backoff.strategy(),
                backoff,
            },
            io_uring: IoUringSection {
                entries: 256,
                single_issuer: true,
                defer_taskrun: true,
                coop_taskrun: false,
                sqpoll: false,
                sqpoll_core: None,
                sqpoll_idle: Duration::from_millis(1_000),
                registered_buffers: 32,
                provided_buffers: 256,
                buffer_size: 16 << 10,
                send_zc_threshold: 0,
                batch: 32,
            },
            net: NetSection::default(),
            cluster: ClusterSection::default(),
            flow: FlowDefaults {
                ring_bytes: 256 << 10,
                max_msg: 1 << 20,
                spin: Duration::from_micros(20),
                latency: true,
                prefault: true,
            },
            origins: vec![Origin::Default; keys::KEYS.len()],
        }
    }
}

/// Equal when every key has the same value, wherever the values came from.
impl PartialEq for EngineConfig {
    fn eq(&self, other: &Self) -> bool {
        self.engine == other.engine
            && self.io_uring == other.io_uring
            && self.net == other.net
            && self.flow == other.flow
            && self.cluster == other.cluster
    }
}

impl Eq for EngineConfig {}

impl fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineConfig")
            .field("engine", &self.engine)
            .field("io_uring", &self.io_uring)
            .field("net", &self.net)
            .field("flow", &self.flow)
            .field("cluster", &self.cluster)
            .finish()
    }
}

impl EngineConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> EngineConfigBuilder {
        EngineConfigBuilder::from_config(EngineConfig::default())
    }

    /// A builder starting from this configuration.
    pub fn to_builder(&self) -> EngineConfigBuilder {
        EngineConfigBuilder::from_config(self.clone())
    }

    /// Parses a TOML document; keys it leaves out keep their defaults.
    pub fn from_toml_str(text: &str) -> Result<EngineConfig, ConfigError> {
        let mut builder = EngineConfig::builder();
        parse::parse_into(&mut builder, text, None)?;
        builder.build()
    }

    /// Reads and parses a TOML file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<EngineConfig, ConfigError> {
        let mut builder = EngineConfig::builder();
        read_file_into(&mut builder, path.as_ref())?;
        builder.build()
    }

    /// The configuration of this process: the file named by
    /// `RINGFLOW_CONFIG` (defaults when unset or empty), then the
    /// `RINGFLOW_*` overrides of the process environment. Keys are checked
    /// against each other once, after the overrides, so an override can
    /// resolve a conflict in the file.
    pub fn load() -> Result<EngineConfig, ConfigError> {
        EngineConfig::load_with(env::process_vars()?)
    }

    /// [`EngineConfig::load`] with these variables in place of the process
    /// environment (for tests, and for callers that filter it).
    pub fn load_with(vars: impl IntoIterator<Item = (String, String)>) -> Result<EngineConfig, ConfigError> {
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        let mut builder = EngineConfig::builder();
        let file = vars.iter().rev().find(|(name, _)| name == CONFIG_ENV).map(|(_, path)| path.as_str());
        if let Some(path) = file.filter(|path| !path.is_empty()) {
            read_file_into(&mut builder, Path::new(path))?;
        }
        env::apply(&mut builder, vars.into_iter())?;
        builder.build()
    }

    /// Applies `RINGFLOW_*` overrides from `vars` (other names are ignored,
    /// as are `RINGFLOW_CONFIG`, `RINGFLOW_LOG`, `RINGFLOW_RUNTIME_DIR` and `RINGFLOW_TEST_*`).
    /// On error the configuration is left as it was.
    pub fn apply_env(&mut self, vars: impl Iterator<Item = (String, String)>) -> Result<(), ConfigError> {
        let mut builder = self.to_builder();
        env::apply(&mut builder, vars)?;
        *self = builder.build()?;
        Ok(())
    }

    /// Every key's dotted path, in the order of the documented file.
    pub fn key_paths() -> impl Iterator<Item = &'static str> {
        keys::KEYS.iter().map(|spec| spec.path)
    }

    /// Where the value of `key` (a dotted path) came from; `None` for an
    /// unknown key.
    pub fn origin(&self, key: &str) -> Option<&Origin> {
        keys::find(key).and_then(|(index, _)| self.origins.get(index))
    }

    /// This configuration as a TOML document that parses back to it.
    pub fn to_toml_string(&self) -> String {
        let mut out = String::new();
        let mut table = "";
        for spec in keys::KEYS {
            let (this_table, key) = keys::split_path(spec.path);
            if this_table != table {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(&format!("[{this_table}]\n"));
                table = this_table;
            }
            out.push_str(&format!("{key} = {}\n", (spec.get)(self).to_toml()));
        }
        out
    }

    /// This configuration as `RINGFLOW_*` variables that, applied to the
    /// defaults, give it back.
    pub fn to_env_vars(&self) -> Vec<(String, String)> {
        keys::KEYS.iter().map(|spec| (spec.env_name(), (spec.get)(self).to_env())).collect()
    }

    /// `[engine]`.
    pub fn engine(&self) -> &EngineSection {
        &self.engine
    }

    /// `[io_uring]`.
    pub fn io_uring(&self) -> &IoUringSection {
        &self.io_uring
    }

    /// `[net]`.
    pub fn net(&self) -> &NetSection {
        &self.net
    }

    /// `[flow]`.
    pub fn flow(&self) -> &FlowDefaults {
        &self.flow
    }

    /// `[cluster]`.
    pub fn cluster(&self) -> &ClusterSection {
        &self.cluster
    }
}

/// Reads the TOML file at `path` into `builder`.
fn read_file_into(builder: &mut EngineConfigBuilder, path: &Path) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.to_path_buf(), source })?;
    parse::parse_into(builder, &text, Some(path))
}
