//! The one table of configuration keys, through which all three forms pass.
//!
//! Each key has a dotted path (its TOML place, and its `RINGFLOW_*` name), a
//! [`Kind`] (its type and allowed values) and two functions that read it from
//! and store it into an [`EngineConfig`]. The builder, the TOML walker and the
//! environment overrides all check and store through [`KEYS`], which is what
//! makes them map 1:1; a key missing here exists in no form. This module
//! never checks one key against another (that is `validate`).

use std::fmt::Write as _;
use std::time::Duration;

use super::{CrossingGroup, EngineConfig, HostPort, IdleStrategy, NetBackend, Peer, ThreadingMode};
use crate::flow::qos::{MAX_MSG_LIMIT, MAX_RING_BYTES, MIN_RING_BYTES};

pub(crate) const ENGINE_THREADS: &str = "engine.threads";
pub(crate) const ENGINE_CORES: &str = "engine.cores";
pub(crate) const ENGINE_MODE: &str = "engine.mode";
pub(crate) const ENGINE_IDLE: &str = "engine.idle";
pub(crate) const BACKOFF_SPINS: &str = "engine.backoff.spins";
pub(crate) const BACKOFF_YIELDS: &str = "engine.backoff.yields";
pub(crate) const BACKOFF_PARK_US: &str = "engine.backoff.park_us";
pub(crate) const URING_ENTRIES: &str = "io_uring.entries";
pub(crate) const URING_SINGLE_ISSUER: &str = "io_uring.single_issuer";
pub(crate) const URING_DEFER_TASKRUN: &str = "io_uring.defer_taskrun";
pub(crate) const URING_COOP_TASKRUN: &str = "io_uring.coop_taskrun";
pub(crate) const URING_SQPOLL: &str = "io_uring.sqpoll";
pub(crate) const URING_SQPOLL_CORE: &str = "io_uring.sqpoll_core";
pub(crate) const URING_SQPOLL_IDLE_MS: &str = "io_uring.sqpoll_idle_ms";
pub(crate) const URING_REGISTERED_BUFFERS: &str = "io_uring.registered_buffers";
pub(crate) const URING_PROVIDED_BUFFERS: &str = "io_uring.provided_buffers";
pub(crate) const URING_BUFFER_SIZE: &str = "io_uring.buffer_size";
pub(crate) const URING_SEND_ZC_THRESHOLD: &str = "io_uring.send_zc_threshold";
pub(crate) const URING_BATCH: &str = "io_uring.batch";
pub(crate) const NET_LISTEN: &str = "net.listen";
pub(crate) const NET_PEERS: &str = "net.peers";
pub(crate) const NET_BACKEND: &str = "net.backend";
pub(crate) const NET_MEMORY_BUDGET: &str = "net.memory_budget";
pub(crate) const NET_KEY_FILE: &str = "net.key_file";
pub(crate) const NET_HELLO_TIMEOUT_MS: &str = "net.hello_timeout_ms";
pub(crate) const NET_MAX_HELLOS: &str = "net.max_hellos";
pub(crate) const CLUSTER_ENABLED: &str = "cluster.enabled";
pub(crate) const CLUSTER_TICK_MS: &str = "cluster.tick_ms";
pub(crate) const CLUSTER_ELECTION_TICKS: &str = "cluster.election_ticks";
pub(crate) const CLUSTER_HEARTBEAT_TICKS: &str = "cluster.heartbeat_ticks";
pub(crate) const CLUSTER_COMPACT_AFTER: &str = "cluster.compact_after";
pub(crate) const CLUSTER_COMPACT_AFTER_BYTES: &str = "cluster.compact_after_bytes";
pub(crate) const CLUSTER_MAX_MESSAGE_BYTES: &str = "cluster.max_message_bytes";
pub(crate) const CLUSTER_NODE_TIMEOUT_MS: &str = "cluster.node_timeout_ms";
pub(crate) const CLUSTER_GROUP_INTAKE_BYTES: &str = "cluster.group_intake_bytes";
pub(crate) const CLUSTER_GROUPS: &str = "cluster.groups";
pub(crate) const FLOW_RING_BYTES: &str = "flow.ring_bytes";
pub(crate) const FLOW_MAX_MSG: &str = "flow.max_msg";
pub(crate) const FLOW_SPIN_US: &str = "flow.spin_us";
pub(crate) const FLOW_LATENCY: &str = "flow.latency";
pub(crate) const FLOW_PREFAULT: &str = "flow.prefault";

/// The word that stands for "not set" in an optional key, in every form.
pub(crate) const NONE: &str = "none";

/// A value as read from TOML, the environment or a builder call, before it
/// is checked against its key's [`Kind`].
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Raw {
    Bool(bool),
    Int(i128),
    Str(String),
    List(Vec<Raw>),
    /// A TOML value no key takes (float, datetime, table), by type name.
    Other(&'static str),
}

impl Raw {
    /// The type's name as a user would say it.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Raw::Bool(_) => "boolean",
            Raw::Int(_) => "integer",
            Raw::Str(_) => "string",
            Raw::List(_) => "array",
            Raw::Other(name) => name,
        }
    }

    /// The value as a TOML literal.
    pub(crate) fn to_toml(&self) -> String {
        match self {
            Raw::Bool(b) => b.to_string(),
            Raw::Int(n) => n.to_string(),
            Raw::Str(s) => toml_string(s),
            Raw::List(items) => format!("[{}]", items.iter().map(Raw::to_toml).collect::<Vec<_>>().join(", ")),
            Raw::Other(name) => format!("<{name}>"),
        }
    }

    /// The value as a `RINGFLOW_*` variable would carry it: lists
    /// comma-separated, strings bare.
    pub(crate) fn to_env(&self) -> String {
        match self {
            Raw::Str(s) => s.clone(),
            Raw::List(items) => items.iter().map(Raw::to_env).collect::<Vec<_>>().join(","),
            other => other.to_toml(),
        }
    }
}

/// A TOML basic string with the escapes the grammar requires.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What a key takes. Fixes its TOML type, how its variable is read, and
/// what `validate::check` accepts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    Bool,
    /// An integer in `min..=max`, a power of two if `pow2`.
    Int {
        min: u64,
        max: u64,
        pow2: bool,
    },
    /// One of these words.
    Choice(&'static [&'static str]),
    /// A CPU id below the host's configured CPU count, or "none".
    OptCore,
    /// A list of distinct CPU ids.
    Cores,
    /// `host:port`, or "none".
    OptAddr,
    /// A list of `host:port` / `name@host:port`.
    Peers,
    /// A file path, or "none".
    OptPath,
    /// A list of groups, each `name` or `name:guarantee`, distinct names.
    Groups,
}

impl Kind {
    /// The type the key takes, for "wrong type" messages.
    pub(crate) fn expected(self) -> &'static str {
        match self {
            Kind::Bool => "a boolean",
            Kind::Int { .. } => "an integer",
            Kind::Choice(_) | Kind::OptAddr | Kind::OptPath => "a string",
            Kind::OptCore => "an integer or \"none\"",
            Kind::Cores => "an array of integers",
            Kind::Peers | Kind::Groups => "an array of strings",
        }
    }

    /// Everything the key accepts, for messages.
    pub(crate) fn allowed(self) -> String {
        let cpus = super::validate::configured_cpus();
        match self {
            Kind::Bool => "true or false".to_owned(),
            Kind::Int { min, max, pow2: true } => format!("a power of two from {min} to {max}"),
            Kind::Int { min, max, pow2: false } => format!("an integer from {min} to {max}"),
            Kind::Choice(words) => {
                format!("one of {}", words.iter().map(|w| format!("\"{w}\"")).collect::<Vec<_>>().join(", "))
            }
            Kind::OptCore => {
                format!("a CPU id from 0 to {} (this host has {cpus} CPUs configured), or \"{NONE}\"", cpus - 1)
            }
            Kind::Cores => format!(
                "a list of distinct CPU ids from 0 to {} (this host has {cpus} CPUs configured); empty for no pinning",
                cpus - 1
            ),
            Kind::OptAddr => {
                format!("\"host:port\" (IP address or DNS name; IPv6 in brackets; port 0..=65535), or \"{NONE}\"")
            }
            Kind::Peers => {
                "a list of \"host:port\" or \"name@host:port\" (port 1..=65535, distinct entries)".to_owned()
            }
            Kind::OptPath => format!("a file path, or \"{NONE}\""),
            Kind::Groups => format!(
                "a list of distinct group names (as `Group::join` takes them, at most {} bytes each, no ':'), \
                 each alone or followed by ':' and the group's guarantee: unordered, fifo, agreed or safe \
                 (\"orders:safe\")",
                crate::config::MAX_CLUSTER_GROUP_NAME
            ),
        }
    }
}

/// One configuration key.
pub(crate) struct KeySpec {
    /// Dotted path: TOML table(s) and key.
    pub(crate) path: &'static str,
    pub(crate) kind: Kind,
    /// Reads the key's value from a config.
    pub(crate) get: fn(&EngineConfig) -> Raw,
    /// Stores a value that `validate::check` accepted for this kind.
    pub(crate) set: fn(&mut EngineConfig, &Raw),
}

impl KeySpec {
    /// The environment variable that overrides this key.
    pub(crate) fn env_name(&self) -> String {
        env_name(self.path)
    }
}

/// `engine.backoff.park_us` → `RINGFLOW_ENGINE_BACKOFF_PARK_US`.
pub(crate) fn env_name(path: &str) -> String {
    format!("{}{}", super::ENV_PREFIX, path.to_ascii_uppercase().replace('.', "_"))
}

const fn int(min: u64, max: u64) -> Kind {
    Kind::Int { min, max, pow2: false }
}

const fn pow2(min: u64, max: u64) -> Kind {
    Kind::Int { min, max, pow2: true }
}

/// Every key, in the order of the documented file.
pub(crate) static KEYS: &[KeySpec] = &[
    KeySpec {
        path: ENGINE_THREADS,
        kind: int(1, 64),
        get: |c| Raw::Int(c.engine.threads as i128),
        set: |c, v| c.engine.threads = uint(v),
    },
    KeySpec {
        path: ENGINE_CORES,
        kind: Kind::Cores,
        get: |c| Raw::List(c.engine.cores.iter().map(|&id| Raw::Int(id as i128)).collect()),
        set: |c, v| c.engine.cores = list(v).iter().map(uint).collect(),
    },
    KeySpec {
        path: ENGINE_MODE,
        kind: Kind::Choice(&["dedicated", "invoker"]),
        get: |c| Raw::Str(c.engine.mode.name().to_owned()),
        set: |c, v| {
            c.engine.mode = if text(v) == "invoker" { ThreadingMode::Invoker } else { ThreadingMode::Dedicated }
        },
    },
    KeySpec {
        path: ENGINE_IDLE,
        kind: Kind::Choice(&["spin", "backoff", "park"]),
        get: |c| Raw::Str(c.engine.idle.name().to_owned()),
        set: |c, v| {
            c.engine.idle = match text(v) {
                "spin" => IdleStrategy::Spin,
                "park" => IdleStrategy::Park,
                _ => c.engine.backoff.strategy(),
            }
        },
    },
    KeySpec {
        path: BACKOFF_SPINS,
        kind: int(0, 100_000_000),
        get: |c| Raw::Int(c.engine.backoff.spins.into()),
        set: |c, v| {
            c.engine.backoff.spins = uint(v);
            c.engine.sync_idle();
        },
    },
    KeySpec {
        path: BACKOFF_YIELDS,
        kind: int(0, 1_000_000),
        get: |c| Raw::Int(c.engine.backoff.yields.into()),
        set: |c, v| {
            c.engine.backoff.yields = uint(v);
            c.engine.sync_idle();
        },
    },
    KeySpec {
        path: BACKOFF_PARK_US,
        kind: int(1, 1_000_000),
        get: |c| Raw::Int(c.engine.backoff.park.as_micros() as i128),
        set: |c, v| {
            c.engine.backoff.park = Duration::from_micros(uint(v));
            c.engine.sync_idle();
        },
    },
    KeySpec {
        path: URING_ENTRIES,
        kind: pow2(8, 32_768),
        get: |c| Raw::Int(c.io_uring.entries.into()),
        set: |c, v| c.io_uring.entries = uint(v),
    },
    KeySpec {
        path: URING_SINGLE_ISSUER,
        kind: Kind::Bool,
        get: |c| Raw::Bool(c.io_uring.single_issuer),
        set: |c, v| c.io_uring.single_issuer = boolean(v),
    },
    KeySpec {
        path: URING_DEFER_TASKRUN,
        kind: Kind::Bool,
        get: |c| Raw::Bool(c.io_uring.defer_taskrun),
        set: |c, v| c.io_uring.defer_taskrun = boolean(v),
    },
    KeySpec {
        path: URING_COOP_TASKRUN,
        kind: Kind::Bool,
        get: |c| Raw::Bool(c.io_uring.coop_taskrun),
        set: |c, v| c.io_uring.coop_taskrun = boolean(v),
    },
    KeySpec {
        path: URING_SQPOLL,
        kind: Kind::Bool,
        get: |c| Raw::Bool(c.io_uring.sqpoll),
        set: |c, v| c.io_uring.sqpoll = boolean(v),
    },
    KeySpec {
        path: URING_SQPOLL_CORE,
        kind: Kind::OptCore,
        get: |c| c.io_uring.sqpoll_core.map_or_else(|| Raw::Str(NONE.to_owned()), |id| Raw::Int(id as i128)),
        set: |c, v| c.io_uring.sqpoll_core = if let Raw::Int(_) = v { Some(uint(v)) } else { None },
    },
    KeySpec {
        path: URING_SQPOLL_IDLE_MS,
        kind: int(1, 60_000),
        get: |c| Raw::Int(c.io_uring.sqpoll_idle.as_millis() as i128),
        set: |c, v| c.io_uring.sqpoll_idle = Duration::from_millis(uint(v)),
    },
    KeySpec {
        path: URING_REGISTERED_BUFFERS,
        kind: int(0, 16_384),
        get: |c| Raw::Int(c.io_uring.registered_buffers.into()),
        set: |c, v| c.io_uring.registered_buffers = uint(v),
    },
    KeySpec {
        path: URING_PROVIDED_BUFFERS,
        kind: pow2(1, 32_768),
        get: |c| Raw::Int(c.io_uring.provided_buffers.into()),
        set: |c, v| c.io_uring.provided_buffers = uint(v),
    },
    KeySpec {
        path: URING_BUFFER_SIZE,
        kind: int(512, 16 << 20),
        get: |c| Raw::Int(c.io_uring.buffer_size as i128),
        set: |c, v| c.io_uring.buffer_size = uint(v),
    },
    KeySpec {
        path: URING_SEND_ZC_THRESHOLD,
        kind: int(0, MAX_MSG_LIMIT as u64),
        get: |c| Raw::Int(c.io_uring.send_zc_threshold as i128),
        set: |c, v| c.io_uring.send_zc_threshold = uint(v),
    },
    KeySpec {
        path: URING_BATCH,
        kind: int(1, 4_096),
        get: |c| Raw::Int(c.io_uring.batch.into()),
        set: |c, v| c.io_uring.batch = uint(v),
    },
    KeySpec {
        path: NET_LISTEN,
        kind: Kind::OptAddr,
        get: |c| Raw::Str(c.net.listen.as_ref().map_or_else(|| NONE.to_owned(), HostPort::to_string)),
        set: |c, v| c.net.listen = if is_none(v) { None } else { HostPort::parse(text(v)).ok() },
    },
    KeySpec {
        path: NET_PEERS,
        kind: Kind::Peers,
        get: |c| Raw::List(c.net.peers.iter().map(|p| Raw::Str(p.to_string())).collect()),
        set: |c, v| c.net.peers = list(v).iter().filter_map(|p| Peer::parse(text(p)).ok()).collect(),
    },
    KeySpec {
        path: NET_BACKEND,
        kind: Kind::Choice(&["auto", "io_uring", "sockets"]),
        get: |c| Raw::Str(c.net.backend.name().to_owned()),
        set: |c, v| {
            c.net.backend = match text(v) {
                "io_uring" => NetBackend::IoUring,
                "sockets" => NetBackend::Sockets,
                _ => NetBackend::Auto,
            }
        },
    },
    KeySpec {
        path: NET_MEMORY_BUDGET,
        kind: int(1 << 20, 1 << 40),
        get: |c| Raw::Int(c.net.memory_budget as i128),
        set: |c, v| c.net.memory_budget = uint(v),
    },
    KeySpec {
        path: NET_KEY_FILE,
        kind: Kind::OptPath,
        get: |c| Raw::Str(c.net.key_file.as_ref().map_or_else(|| NONE.to_owned(), |p| p.display().to_string())),
        set: |c, v| c.net.key_file = if is_none(v) { None } else { Some(text(v).into()) },
    },
    KeySpec {
        path: NET_HELLO_TIMEOUT_MS,
        kind: int(10, 600_000),
        get: |c| Raw::Int(c.net.hello_timeout.as_millis() as i128),
        set: |c, v| c.net.hello_timeout = Duration::from_millis(uint(v)),
    },
    KeySpec {
        path: NET_MAX_HELLOS,
        kind: int(1, 65_536),
        get: |c| Raw::Int(c.net.max_hellos as i128),
        set: |c, v| c.net.max_hellos = uint(v),
    },
    KeySpec {
        path: FLOW_RING_BYTES,
        kind: pow2(MIN_RING_BYTES as u64, MAX_RING_BYTES as u64),
        get: |c| Raw::Int(c.flow.ring_bytes as i128),
        set: |c, v| c.flow.ring_bytes = uint(v),
    },
    KeySpec {
        path: FLOW_MAX_MSG,
        kind: int(1, MAX_MSG_LIMIT as u64),
        get: |c| Raw::Int(c.flow.max_msg as i128),
        set: |c, v| c.flow.max_msg = uint(v),
    },
    KeySpec {
        path: FLOW_SPIN_US,
        kind: int(0, 1_000_000),
        get: |c| Raw::Int(c.flow.spin.as_micros() as i128),
        set: |c, v| c.flow.spin = Duration::from_micros(uint(v)),
    },
    KeySpec {
        path: FLOW_LATENCY,
        kind: Kind::Bool,
        get: |c| Raw::Bool(c.flow.latency),
        set: |c, v| c.flow.latency = boolean(v),
    },
    KeySpec {
        path: FLOW_PREFAULT,
        kind: Kind::Bool,
        get: |c| Raw::Bool(c.flow.prefault),
        set: |c, v| c.flow.prefault = boolean(v),
    },
    KeySpec {
        path: CLUSTER_ENABLED,
        kind: Kind::Bool,
        get: |c| Raw::Bool(c.cluster.enabled),
        set: |c, v| c.cluster.enabled = boolean(v),
    },
    KeySpec {
        path: CLUSTER_TICK_MS,
        kind: int(1, 10_000),
        get: |c| Raw::Int(c.cluster.tick.as_millis() as i128),
        set: |c, v| c.cluster.tick = Duration::from_millis(uint(v)),
    },
    KeySpec {
        path: CLUSTER_ELECTION_TICKS,
        kind: int(2, 100_000),
        get: |c| Raw::Int(c.cluster.election_ticks as i128),
        set: |c, v| c.cluster.election_ticks = uint(v),
    },
    KeySpec {
        path: CLUSTER_HEARTBEAT_TICKS,
        kind: int(1, 100_000),
        get: |c| Raw::Int(c.cluster.heartbeat_ticks as i128),
        set: |c, v| c.cluster.heartbeat_ticks = uint(v),
    },
    KeySpec {
        path: CLUSTER_COMPACT_AFTER,
        kind: int(1, 1 << 24),
        get: |c| Raw::Int(c.cluster.compact_after as i128),
        set: |c, v| c.cluster.compact_after = uint(v),
    },
    KeySpec {
        path: CLUSTER_COMPACT_AFTER_BYTES,
        kind: int(1 << 20, 1 << 40),
        get: |c| Raw::Int(c.cluster.compact_after_bytes as i128),
        set: |c, v| c.cluster.compact_after_bytes = uint(v),
    },
    KeySpec {
        path: CLUSTER_MAX_MESSAGE_BYTES,
        kind: int(4096, crate::wire::MAX_CLUSTER_LEN as u64),
        get: |c| Raw::Int(c.cluster.max_message_bytes as i128),
        set: |c, v| c.cluster.max_message_bytes = uint(v),
    },
    KeySpec {
        path: CLUSTER_NODE_TIMEOUT_MS,
        kind: int(10, 3_600_000),
        get: |c| Raw::Int(c.cluster.node_timeout.as_millis() as i128),
        set: |c, v| c.cluster.node_timeout = Duration::from_millis(uint(v)),
    },
    KeySpec {
        path: CLUSTER_GROUP_INTAKE_BYTES,
        kind: int(4096, 1 << 30),
        get: |c| Raw::Int(c.cluster.group_intake_bytes as i128),
        set: |c, v| c.cluster.group_intake_bytes = uint(v),
    },
    KeySpec {
        path: CLUSTER_GROUPS,
        kind: Kind::Groups,
        get: |c| Raw::List(c.cluster.groups.iter().map(|g| Raw::Str(g.to_string())).collect()),
        set: |c, v| c.cluster.groups = list(v).iter().filter_map(|g| CrossingGroup::parse(text(g)).ok()).collect(),
    },
];

/// The key at `path`, with its index in [`KEYS`].
pub(crate) fn find(path: &str) -> Option<(usize, &'static KeySpec)> {
    KEYS.iter().enumerate().find(|(_, spec)| spec.path == path)
}

/// The key a `RINGFLOW_*` variable overrides.
pub(crate) fn find_env(var: &str) -> Option<(usize, &'static KeySpec)> {
    KEYS.iter().enumerate().find(|(_, spec)| spec.env_name() == var)
}

/// Whether `path` is a table that holds keys (`engine`, `engine.backoff`).
pub(crate) fn is_table(path: &str) -> bool {
    KEYS.iter().any(|spec| spec.path.strip_prefix(path).is_some_and(|rest| rest.starts_with('.')))
}

/// The names allowed directly inside the table at `prefix` ("" for the
/// top level), in table order, without repeats.
pub(crate) fn children(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for spec in KEYS {
        let rest = if prefix.is_empty() {
            Some(spec.path)
        } else {
            spec.path.strip_prefix(prefix).and_then(|rest| rest.strip_prefix('.'))
        };
        if let Some(name) = rest.and_then(|rest| rest.split('.').next()) {
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
    }
    names
}

/// `(table, key)` of a dotted path: `engine.backoff.spins` → (`engine.backoff`, `spins`).
pub(crate) fn split_path(path: &str) -> (&str, &str) {
    path.rsplit_once('.').unwrap_or(("", path))
}

/// An integer that `validate::check` already bounded; the fallback is never
/// taken.
fn uint<T: TryFrom<i128> + Default>(raw: &Raw) -> T {
    match raw {
        Raw::Int(n) => T::try_from(*n).unwrap_or_default(),
        _ => T::default(),
    }
}

fn boolean(raw: &Raw) -> bool {
    matches!(raw, Raw::Bool(true))
}

fn text(raw: &Raw) -> &str {
    match raw {
        Raw::Str(s) => s,
        _ => "",
    }
}

fn list(raw: &Raw) -> &[Raw] {
    match raw {
        Raw::List(items) => items,
        _ => &[],
    }
}

/// Whether an optional key's value means "not set": `"none"` or empty.
pub(crate) fn is_none(raw: &Raw) -> bool {
    matches!(raw, Raw::Str(s) if s.is_empty() || s == NONE)
}
