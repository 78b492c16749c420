//! Tests of the configuration: the shipped file, the 1:1 mapping of the
//! three forms, and every error with its message. Property tests (round
//! trips of random configurations, garbage that must be refused without a
//! panic) are in `prop`.

use std::time::Duration;

use super::keys::{self, KEYS};
use super::*;
use crate::group::Guarantee;

mod prop;

const SHIPPED: &str = include_str!("../../../ringflow.toml");

fn err_toml(text: &str) -> ConfigError {
    EngineConfig::from_toml_str(text).expect_err(text)
}

fn err_env(vars: &[(&str, &str)]) -> ConfigError {
    let mut config = EngineConfig::default();
    let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    let err = config.apply_env(vars).expect_err("refused");
    assert_eq!(config, EngineConfig::default(), "a refused override changes nothing");
    err
}

fn assert_mentions(err: &ConfigError, parts: &[&str]) {
    let message = err.to_string();
    for part in parts {
        assert!(message.contains(part), "{message:?} should mention {part:?}");
    }
}

#[test]
fn shipped_file_is_the_documented_defaults() {
    let shipped = EngineConfig::from_toml_str(SHIPPED).unwrap();
    assert_eq!(shipped, EngineConfig::default());
    // The values the file documents, spelled out once more.
    let documented = EngineConfig::builder()
        .threads(1)
        .cores([])
        .mode(ThreadingMode::Dedicated)
        .idle(IdleStrategy::Backoff { spins: 100, yields: 10, park: Duration::from_micros(1000) })
        .entries(256)
        .single_issuer(true)
        .defer_taskrun(true)
        .coop_taskrun(false)
        .sqpoll(false)
        .sqpoll_core(None)
        .sqpoll_idle_ms(1000)
        .registered_buffers(32)
        .provided_buffers(256)
        .buffer_size(16384)
        .send_zc_threshold(0)
        .batch(32)
        .listen(None)
        .peers(Vec::<String>::new())
        .ring_bytes(262144)
        .max_msg(1048576)
        .spin_us(20)
        .build()
        .unwrap();
    assert_eq!(shipped, documented);
    assert!(matches!(shipped.origin("engine.threads"), Some(Origin::Toml { line, .. }) if *line > 1));
    assert_eq!(shipped.origin("net.listen"), Some(&Origin::Default), "left out: the default");
}

/// Every key appears in the shipped file in its table (optional ones
/// commented out), under a comment that gives its default, what is allowed
/// and what it trades.
#[test]
fn shipped_file_documents_every_key() {
    let lines: Vec<&str> = SHIPPED.lines().collect();
    let mut table = String::new();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            table = name.to_owned();
            continue;
        }
        let Some((key, _)) = line.trim_start_matches("# ").split_once(" = ") else { continue };
        let path = format!("{table}.{key}");
        if keys::find(&path).is_none() {
            continue;
        }
        let block: Vec<&str> = lines[..i].iter().rev().take_while(|l| l.starts_with('#')).copied().collect();
        let block = block.join("\n");
        for word in ["Allowed", "Default"] {
            assert!(block.contains(word), "{path}: its comment should say {word}");
        }
        assert!(block.contains("Trade"), "{path}: its comment should say what it trades");
        found.push(path);
    }
    for path in EngineConfig::key_paths() {
        assert!(found.iter().any(|f| f == path), "{path} is not documented in ringflow.toml");
    }
}

/// One key (or a few that must go together) set three ways.
fn kv(path: &'static str, toml: impl ToString, env: impl ToString) -> (&'static str, String, String) {
    (path, toml.to_string(), env.to_string())
}

/// Sets `entries` through TOML, the environment and `builder`; all three
/// must give the same, non-default configuration.
fn same_three_ways(entries: &[(&'static str, String, String)], builder: EngineConfigBuilder) -> EngineConfig {
    let text: String = entries.iter().map(|(path, value, _)| format!("{path} = {value}\n")).collect();
    let from_toml = EngineConfig::from_toml_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
    let mut from_env = EngineConfig::default();
    let vars = entries.iter().map(|(path, _, value)| (keys::env_name(path), value.clone()));
    from_env.apply_env(vars).unwrap_or_else(|e| panic!("{entries:?}: {e}"));
    let from_builder = builder.build().unwrap_or_else(|e| panic!("{entries:?}: {e}"));
    assert_eq!(from_toml, from_builder, "TOML vs builder: {text}");
    assert_eq!(from_env, from_builder, "environment vs builder: {entries:?}");
    assert_ne!(from_builder, EngineConfig::default(), "{entries:?} should change something");
    for (path, ..) in entries {
        assert!(matches!(from_toml.origin(path), Some(Origin::Toml { path: None, .. })));
        assert_eq!(from_env.origin(path), Some(&Origin::Env { var: keys::env_name(path) }));
        assert_eq!(from_builder.origin(path), Some(&Origin::Builder));
    }
    from_builder
}

#[test]
fn every_key_maps_one_to_one() {
    let b = EngineConfig::builder;
    let last = configured_cpus() - 1;
    let cases: Vec<(Vec<_>, EngineConfigBuilder)> = vec![
        (vec![kv("engine.threads", 3, 3)], b().threads(3)),
        (vec![kv("engine.cores", format!("[{last}]"), last)], b().cores([last])),
        (vec![kv("engine.mode", "\"invoker\"", "invoker")], b().mode(ThreadingMode::Invoker)),
        (vec![kv("engine.idle", "\"spin\"", "spin")], b().idle(IdleStrategy::Spin)),
        (vec![kv("engine.idle", "\"park\"", "park")], b().idle(IdleStrategy::Park)),
        (
            vec![
                kv("engine.backoff.spins", 7, 7),
                kv("engine.backoff.yields", 0, 0),
                kv("engine.backoff.park_us", 50, 50),
            ],
            b().backoff_spins(7).backoff_yields(0).backoff_park_us(50),
        ),
        (vec![kv("io_uring.entries", 1024, 1024)], b().entries(1024)),
        (
            vec![kv("io_uring.single_issuer", false, false), kv("io_uring.defer_taskrun", false, false)],
            b().single_issuer(false).defer_taskrun(false),
        ),
        (vec![kv("io_uring.coop_taskrun", true, true)], b().coop_taskrun(true)),
        (
            vec![
                kv("io_uring.sqpoll", true, true),
                kv("io_uring.defer_taskrun", false, false),
                kv("io_uring.sqpoll_core", last, last),
                kv("io_uring.sqpoll_idle_ms", 5, 5),
            ],
            b().sqpoll(true).defer_taskrun(false).sqpoll_core(Some(last)).sqpoll_idle_ms(5),
        ),
        (vec![kv("io_uring.registered_buffers", 0, 0)], b().registered_buffers(0)),
        (vec![kv("io_uring.provided_buffers", 1024, 1024)], b().provided_buffers(1024)),
        (vec![kv("io_uring.buffer_size", 65536, 65536)], b().buffer_size(65536)),
        (vec![kv("io_uring.send_zc_threshold", 65536, 65536)], b().send_zc_threshold(65536)),
        (vec![kv("io_uring.batch", 8, 8)], b().batch(8)),
        (vec![kv("net.listen", "\"127.0.0.1:7070\"", "127.0.0.1:7070")], b().listen(Some("127.0.0.1:7070"))),
        (vec![kv("net.listen", "\"[::1]:0\"", "[::1]:0")], b().listen(Some("[::1]:0"))),
        (
            vec![kv("net.peers", "[\"a@host.example:1\", \"10.0.0.1:2\"]", "a@host.example:1, 10.0.0.1:2")],
            b().peers(["a@host.example:1", "10.0.0.1:2"]),
        ),
        (vec![kv("net.backend", "\"sockets\"", "sockets")], b().backend(NetBackend::Sockets)),
        (vec![kv("net.backend", "\"io_uring\"", "io_uring")], b().backend(NetBackend::IoUring)),
        (vec![kv("net.memory_budget", 1 << 24, 1 << 24)], b().memory_budget(1 << 24)),
        (
            vec![kv("net.key_file", "\"/etc/ringflow/key\"", "/etc/ringflow/key")],
            b().key_file(Some(std::path::Path::new("/etc/ringflow/key"))),
        ),
        (vec![kv("net.hello_timeout_ms", 250, 250)], b().hello_timeout_ms(250)),
        (vec![kv("net.max_hellos", 16, 16)], b().max_hellos(16)),
        (vec![kv("flow.ring_bytes", 4096, 4096)], b().ring_bytes(4096)),
        (vec![kv("flow.max_msg", 1, 1)], b().max_msg(1)),
        (vec![kv("flow.spin_us", 0, 0)], b().spin_us(0)),
        (vec![kv("flow.latency", false, false)], b().latency(false)),
        (vec![kv("flow.prefault", false, false)], b().prefault(false)),
        (
            vec![kv("cluster.enabled", true, true), kv("net.listen", "\"127.0.0.1:7070\"", "127.0.0.1:7070")],
            b().cluster(true).listen(Some("127.0.0.1:7070")),
        ),
        (vec![kv("cluster.tick_ms", 5, 5)], b().cluster_tick_ms(5)),
        (vec![kv("cluster.election_ticks", 20, 20)], b().cluster_election_ticks(20)),
        (vec![kv("cluster.heartbeat_ticks", 2, 2)], b().cluster_heartbeat_ticks(2)),
        (vec![kv("cluster.compact_after", 64, 64)], b().cluster_compact_after(64)),
        (vec![kv("cluster.compact_after_bytes", 1 << 22, 1 << 22)], b().cluster_compact_after_bytes(1 << 22)),
        (vec![kv("cluster.max_message_bytes", 65536, 65536)], b().cluster_max_message_bytes(65536)),
        (vec![kv("cluster.node_timeout_ms", 5000, 5000)], b().cluster_node_timeout_ms(5000)),
        (vec![kv("cluster.group_intake_bytes", 2097152, 2097152)], b().cluster_group_intake_bytes(2 << 20)),
        (
            vec![
                kv("cluster.groups", "[\"orders\", \"trades\"]", "orders, trades"),
                kv("cluster.enabled", true, true),
                kv("net.listen", "\"127.0.0.1:7070\"", "127.0.0.1:7070"),
            ],
            b().cluster_groups(["orders", "trades"]).cluster(true).listen(Some("127.0.0.1:7070")),
        ),
        (
            vec![
                kv("cluster.groups", "[\"orders:SAFE\", \"trades\", \"ticks:fifo\"]", "orders:safe, trades,ticks:Fifo"),
                kv("cluster.enabled", true, true),
                kv("net.listen", "\"127.0.0.1:7070\"", "127.0.0.1:7070"),
            ],
            b().cluster_group("orders", Guarantee::Safe)
                .cluster_groups(["orders:safe", "trades"])
                .cluster_group("ticks", Guarantee::Fifo)
                .cluster(true)
                .listen(Some("127.0.0.1:7070")),
        ),
    ];
    let mut covered = Vec::new();
    for (entries, builder) in cases {
        same_three_ways(&entries, builder);
        covered.extend(entries.iter().map(|(path, ..)| *path));
    }
    for path in EngineConfig::key_paths() {
        assert!(covered.contains(&path), "{path} has no 1:1 case");
    }
}

#[test]
fn unset_optional_keys_three_ways() {
    let set = EngineConfig::builder().sqpoll(true).defer_taskrun(false).sqpoll_core(Some(0)).listen(Some("h:1"));
    let set = set.build().unwrap();
    let unset = set.to_builder().sqpoll_core(None).listen(None).build().unwrap();
    for word in ["none", ""] {
        let mut from_env = set.clone();
        let vars = [("RINGFLOW_IO_URING_SQPOLL_CORE", word), ("RINGFLOW_NET_LISTEN", word)];
        from_env.apply_env(vars.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
        assert_eq!(from_env, unset);
    }
    let text = "io_uring.sqpoll = true\nio_uring.defer_taskrun = false\nio_uring.sqpoll_core = \"none\"\n";
    assert_eq!(
        EngineConfig::from_toml_str(text).unwrap(),
        EngineConfig::builder().sqpoll(true).defer_taskrun(false).build().unwrap()
    );
}

#[test]
fn idle_override_keeps_the_backoff_steps() {
    let file = EngineConfig::from_toml_str("[engine]\nidle = \"park\"\nbackoff.spins = 7\n").unwrap();
    assert_eq!(file.engine().idle, IdleStrategy::Park);
    let mut config = file.clone();
    config.apply_env([("RINGFLOW_ENGINE_IDLE".to_owned(), "backoff".to_owned())].into_iter()).unwrap();
    assert_eq!(config.engine().idle, IdleStrategy::Backoff { spins: 7, yields: 10, park: Duration::from_micros(1000) });
}

#[test]
fn unknown_keys_are_named_with_their_place_and_the_allowed_ones() {
    let err = err_toml("[engine]\nthreads = 1\nthread = 2\n");
    let ConfigError::UnknownKey(unknown) = &err else { panic!("{err:?}") };
    assert_eq!(
        (unknown.key.as_str(), &unknown.origin),
        ("engine.thread", &Origin::Toml { path: None, line: 3, column: 1 })
    );
    assert_mentions(&err, &["engine.thread", "line 3", "threads, cores, mode, idle, backoff"]);
    assert_mentions(&err_toml("[engin]\n"), &["`engin`", "line 1", "engine, io_uring, net, flow"]);
    assert_mentions(&err_toml("engine.backoff.spin = 1"), &["engine.backoff.spin", "spins, yields, park_us"]);
    let err = err_toml("engine = 3");
    assert!(matches!(err, ConfigError::WrongType(_)));
    assert_mentions(&err, &["`engine`", "a table", "integer 3"]);

    let err = err_env(&[("RINGFLOW_ENGINE_THREAD", "2")]);
    assert!(
        matches!(&err, ConfigError::UnknownKey(e) if e.origin == Origin::Env { var: "RINGFLOW_ENGINE_THREAD".into() })
    );
    assert_mentions(&err, &["`RINGFLOW_ENGINE_THREAD`", "RINGFLOW_ENGINE_THREADS", "RINGFLOW_ENGINE_BACKOFF_SPINS"]);
    assert!(!err.to_string().contains("FLOW_SPIN_US"), "only the [engine] variables are suggested");
    assert_mentions(&err_env(&[("RINGFLOW_NOPE", "1")]), &["RINGFLOW_NOPE", "RINGFLOW_FLOW_SPIN_US"]);
}

/// One reading of a `RINGFLOW_*` boolean for the configuration and the
/// library's own variables: the words a person writes, and nothing else.
#[test]
fn boolean_variables_read_the_same_everywhere() {
    for (text, value) in [("true", true), (" on", true), ("1", true), ("false", false), ("off ", false), ("0", false)] {
        assert_eq!(super::parse_env_bool(text), Some(value), "{text:?}");
        let mut config = EngineConfig::default();
        config.apply_env([("RINGFLOW_FLOW_LATENCY".to_string(), text.to_string())].into_iter()).unwrap();
        assert_eq!(config.flow().latency, value, "{text:?}");
    }
    for text in ["nope", "yes", "", "2", "TRUE"] {
        assert_eq!(super::parse_env_bool(text), None, "{text:?}");
        assert_mentions(&err_env(&[("RINGFLOW_FLOW_LATENCY", text)]), &["RINGFLOW_FLOW_LATENCY"]);
    }
}

#[test]
fn other_variables_are_left_alone() {
    let mut config = EngineConfig::default();
    let vars = [
        ("RINGFLOW_CONFIG", "/nonexistent"),
        ("RINGFLOW_RUNTIME_DIR", "/tmp"),
        ("RINGFLOW_LOG", "ringflow_core=debug"),
        ("RINGFLOW_TEST_CHILD", "1"),
        ("PATH", "/bin"),
        ("ringflow_engine_threads", "x"),
    ];
    config.apply_env(vars.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
    assert_eq!(config, EngineConfig::default());
}

#[test]
fn bad_values_name_key_value_and_range() {
    let err = err_toml("[engine]\nthreads = 0\n");
    assert!(matches!(&err, ConfigError::BadValue(e) if e.key == "engine.threads" && e.value == "0"));
    assert_mentions(&err, &["engine.threads", ": 0", "from 1 to 64", "line 2"]);
    assert_mentions(
        &err_toml("io_uring.entries = 0x64"),
        &["io_uring.entries", "0x64", "not a power of two", "8 to 32768"],
    );
    assert_mentions(
        &err_toml("engine.mode = \"shared\""),
        &["engine.mode", "\"shared\"", "\"dedicated\", \"invoker\""],
    );
    assert_mentions(
        &err_toml("flow.ring_bytes = 99999999999999999999999999999999999999999"),
        &["flow.ring_bytes", "4096"],
    );
    let cpus = configured_cpus();
    let err = err_toml(&format!("engine.cores = [{cpus}]"));
    assert_mentions(
        &err,
        &["engine.cores", &format!("[{cpus}]"), "does not exist", &format!("{cpus} CPUs configured")],
    );
    assert_mentions(
        &err_toml("engine.threads = 2\nengine.cores = [0, 0]"),
        &["engine.cores", "[0, 0]", "listed twice"],
    );
    assert_mentions(
        &err_toml("net.listen = \"localhost\""),
        &["net.listen", "\"localhost\"", "no `:port`", "host:port"],
    );
    assert_mentions(&err_toml("net.peers = [\"a@h:1\", \"a@g:2\"]"), &["net.peers", "repeats", "name@host:port"]);
    assert_mentions(&err_toml("net.peers = [\"h:0\"]"), &["net.peers", "port 0"]);

    let err = err_env(&[("RINGFLOW_IO_URING_ENTRIES", "100")]);
    assert!(matches!(&err, ConfigError::BadValue(e) if matches!(e.origin, Origin::Env { .. })));
    assert_mentions(
        &err,
        &["io_uring.entries", "\"100\"", "RINGFLOW_IO_URING_ENTRIES", "power of two from 8 to 32768"],
    );

    let err = EngineConfig::builder().entries(100).threads(2).build().unwrap_err();
    assert!(matches!(&err, ConfigError::BadValue(e) if e.origin == Origin::Builder), "the first error is kept");
    assert_mentions(&err, &["io_uring.entries", "100", "set in code", "power of two"]);
    assert_mentions(&EngineConfig::builder().peers(["x y"]).build().unwrap_err(), &["net.peers", "x y"]);
}

#[test]
fn wrong_types_name_what_was_expected() {
    let err = err_toml("engine.threads = \"4\"");
    assert!(matches!(&err, ConfigError::WrongType(e) if e.expected == "an integer"));
    assert_mentions(&err, &["engine.threads", "string \"4\"", "an integer", "from 1 to 64"]);
    assert_mentions(&err_toml("engine.threads = 1.5"), &["float 1.5"]);
    assert_mentions(&err_toml("io_uring.sqpoll = 1"), &["io_uring.sqpoll", "a boolean", "integer 1", "true or false"]);
    assert_mentions(&err_toml("engine.cores = [\"0\"]"), &["engine.cores", "an array of integers"]);
    assert_mentions(&err_toml("net.peers = \"h:1\""), &["net.peers", "an array of strings", "string \"h:1\""]);
    assert_mentions(&err_toml("engine.idle = { spin = true }"), &["engine.idle", "table"]);
    assert_mentions(&err_toml("flow.spin_us = 1979-05-27"), &["datetime 1979-05-27"]);
    let err = err_env(&[("RINGFLOW_ENGINE_THREADS", "four")]);
    assert!(matches!(&err, ConfigError::WrongType(_)));
    assert_mentions(&err, &["engine.threads", "\"four\"", "from 1 to 64", "RINGFLOW_ENGINE_THREADS"]);
    assert_mentions(&err_env(&[("RINGFLOW_IO_URING_SQPOLL", "yes")]), &["\"yes\"", "true or false"]);
    assert_mentions(&err_env(&[("RINGFLOW_ENGINE_CORES", "0,x")]), &["engine.cores", "\"0,x\""]);
}

#[test]
fn syntax_errors_say_where() {
    let err = err_toml("[engine]\nthreads = = 2\n");
    assert!(matches!(err, ConfigError::Syntax { line: 2, path: None, .. }), "{err:?}");
    assert_mentions(&err, &["line 2, column"]);
    assert!(matches!(err_toml("a = 1\na = 2"), ConfigError::Syntax { line: 2, .. }), "duplicate key");
}

#[test]
fn files_are_named_in_errors() {
    let tmp = ringflow_testkit::temp_dir("config");
    let path = tmp.path().join("ringflow.toml");
    std::fs::write(&path, "[io_uring]\nentries = 512\nsqpoll = true\n").unwrap();
    let err = EngineConfig::from_file(&path).unwrap_err();
    assert_mentions(&err, &[&path.display().to_string(), "io_uring.sqpoll", "io_uring.defer_taskrun"]);
    let path_str = path.to_str().unwrap();
    let loaded = EngineConfig::load_with([
        (CONFIG_ENV.to_owned(), path_str.to_owned()),
        ("RINGFLOW_IO_URING_DEFER_TASKRUN".to_owned(), "false".to_owned()),
    ])
    .unwrap();
    assert_eq!(loaded, EngineConfig::builder().entries(512).sqpoll(true).defer_taskrun(false).build().unwrap());
    assert!(
        matches!(loaded.origin("io_uring.entries"), Some(Origin::Toml { path: Some(p), line: 2, .. }) if *p == path)
    );
    std::fs::write(&path, "[flow]\nmax_ms = 1\n").unwrap();
    assert_mentions(&EngineConfig::from_file(&path).unwrap_err(), &[&format!("{}:2:1", path.display()), "flow.max_ms"]);
    std::fs::remove_file(&path).unwrap();

    let err = EngineConfig::from_file(&path).unwrap_err();
    assert!(matches!(&err, ConfigError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound));
    assert_mentions(&err, &[&path.display().to_string()]);
    assert!(EngineConfig::load_with([(CONFIG_ENV.to_owned(), path_str.to_owned())]).is_err());
    assert_eq!(EngineConfig::load_with([(CONFIG_ENV.to_owned(), String::new())]).unwrap(), EngineConfig::default());
}

#[test]
fn conflicts_name_both_keys_and_why() {
    let conflict = |text: &str, parts: &[&str]| {
        let err = err_toml(text);
        assert!(matches!(err, ConfigError::Conflict(_)), "{text}: {err}");
        assert_mentions(&err, parts);
    };
    conflict(
        "io_uring.single_issuer = false",
        &["io_uring.defer_taskrun` = true", "io_uring.single_issuer` = false", "SINGLE_ISSUER"],
    );
    conflict("io_uring.sqpoll = true", &["io_uring.sqpoll` = true", "io_uring.defer_taskrun` = true", "(the default)"]);
    conflict(
        "io_uring.sqpoll = true\nio_uring.defer_taskrun = false\nio_uring.coop_taskrun = true",
        &["io_uring.coop_taskrun"],
    );
    conflict("io_uring.sqpoll_core = 0", &["io_uring.sqpoll_core` = 0", "io_uring.sqpoll` = false"]);
    conflict("engine.cores = [0]\nengine.threads = 2", &["engine.cores` = [0]", "engine.threads` = 2", "line 2"]);
    conflict("engine.mode = \"invoker\"\nengine.threads = 2", &["engine.mode` = \"invoker\"", "engine.threads"]);
    conflict("engine.mode = \"invoker\"\nengine.cores = [0]", &["engine.mode", "engine.cores` = [0]"]);
    conflict("io_uring.entries = 8\nio_uring.batch = 9", &["io_uring.batch` = 9", "io_uring.entries` = 8"]);
    let cpus = configured_cpus();
    if cpus < 64 {
        let text = format!("engine.idle = \"spin\"\nengine.threads = {}", cpus + 1);
        conflict(&text, &["engine.idle` = \"spin\"", &format!("engine.threads` = {}", cpus + 1), "starve"]);
    }
    let err = err_env(&[("RINGFLOW_IO_URING_SQPOLL", "true")]);
    assert_mentions(&err, &["from environment variable RINGFLOW_IO_URING_SQPOLL", "io_uring.defer_taskrun"]);
}

#[test]
fn env_names_are_distinct_and_derived_from_paths() {
    assert_eq!(keys::env_name("engine.threads"), "RINGFLOW_ENGINE_THREADS");
    assert_eq!(keys::env_name("io_uring.sqpoll"), "RINGFLOW_IO_URING_SQPOLL");
    let mut names: Vec<String> = KEYS.iter().map(|spec| spec.env_name()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), KEYS.len());
    let cpus = sysfs_cpu_count();
    assert_eq!(configured_cpus(), cpus);
}

/// The configured CPU count read without libc: the `cpuN` entries of sysfs.
fn sysfs_cpu_count() -> usize {
    std::fs::read_dir("/sys/devices/system/cpu")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| {
                    e.file_name().to_str().and_then(|n| n.strip_prefix("cpu")).is_some_and(|n| n.parse::<u32>().is_ok())
                })
                .count()
        })
        .unwrap_or(0)
        .max(1)
}

#[test]
fn cluster_keys_are_checked_against_each_other() {
    let e = EngineConfig::builder().cluster_heartbeat_ticks(50).build().unwrap_err().to_string();
    assert!(e.contains("cluster.heartbeat_ticks") && e.contains("cluster.election_ticks"), "{e}");
    let e = EngineConfig::builder().cluster_node_timeout_ms(1000).build().unwrap_err().to_string();
    assert!(e.contains("cluster.node_timeout_ms") && e.contains("cluster.election_ticks"), "{e}");
    let e = EngineConfig::builder().cluster(true).build().unwrap_err().to_string();
    assert!(e.contains("cluster.enabled") && e.contains("net.listen"), "{e}");
    let ok = EngineConfig::builder().cluster(true).listen(Some("127.0.0.1:0")).build().unwrap();
    assert!(ok.cluster().enabled);
    // A gateway's intake holds a batch in flight and the next one: at
    // least one raft message; the default holds several of the largest.
    let e = EngineConfig::builder()
        .cluster_max_message_bytes(65536)
        .cluster_group_intake_bytes(65535)
        .build()
        .unwrap_err()
        .to_string();
    assert!(e.contains("cluster.group_intake_bytes") && e.contains("cluster.max_message_bytes"), "{e}");
    let ok = EngineConfig::builder().cluster_max_message_bytes(65536).cluster_group_intake_bytes(65536).build();
    assert_eq!(ok.unwrap().cluster().group_intake_bytes, 65536);
    let largest = crate::wire::MAX_CLUSTER_LEN as usize;
    let ok = EngineConfig::builder().cluster_max_message_bytes(largest).build().unwrap();
    assert!(ok.cluster().group_intake_bytes >= 4 * largest);
    // Crossing groups need the cluster; their names are checked like a join's.
    let e = EngineConfig::builder().cluster_groups(["g"]).build().unwrap_err().to_string();
    assert!(e.contains("cluster.groups") && e.contains("cluster.enabled"), "{e}");
    for bad in [vec!["g", "g"], vec![""], vec!["a/b"]] {
        let e = EngineConfig::builder().cluster_groups(bad.clone()).build();
        assert!(e.is_err(), "{bad:?} accepted");
    }
}

/// A crossing group's guarantee, named in `cluster.groups`: what the
/// engine reads from each form, and what it writes back.
#[test]
fn cluster_groups_carry_their_guarantee() {
    let text = "[cluster]\nenabled = true\ngroups = [\"xg:Safe\", \"plain\", \"u:unordered\", \"a:AGREED\"]\n\
                [net]\nlisten = \"127.0.0.1:7070\"\n";
    let config = EngineConfig::from_toml_str(text).unwrap();
    let want = vec![
        CrossingGroup::with_guarantee("xg", Guarantee::Safe),
        CrossingGroup::new("plain"),
        CrossingGroup::with_guarantee("u", Guarantee::Unordered),
        CrossingGroup::with_guarantee("a", Guarantee::Agreed),
    ];
    assert_eq!(config.cluster().groups, want);
    // Written back as the entries read, the guarantee's word in lower case.
    let toml = config.to_toml_string();
    assert!(toml.contains("groups = [\"xg:safe\", \"plain\", \"u:unordered\", \"a:agreed\"]"), "{toml}");
    assert_eq!(EngineConfig::from_toml_str(&toml).unwrap(), config);
    let vars = config.to_env_vars();
    let var = vars.iter().find(|(name, _)| name == "RINGFLOW_CLUSTER_GROUPS").expect("the variable");
    assert_eq!(var.1, "xg:safe,plain,u:unordered,a:agreed");
    let mut from_env = EngineConfig::default();
    from_env.apply_env(vars.into_iter()).unwrap();
    assert_eq!(from_env, config);
    // In code: one group at a time with its guarantee, or the entries.
    let built = EngineConfig::builder()
        .cluster(true)
        .listen(Some("127.0.0.1:7070"))
        .cluster_group("xg", Guarantee::Safe)
        .cluster_groups(["xg:safe", "plain"])
        .cluster_group("u", Guarantee::Unordered)
        .cluster_group("a", Guarantee::Agreed)
        .build()
        .unwrap();
    assert_eq!(built.cluster().groups, want);
    assert_eq!(built, config);
}

/// A guarantee that is none, a name that holds ':' or one named twice
/// (with and without a guarantee) is refused in every form, with the key
/// and the entry.
#[test]
fn a_bad_cluster_group_guarantee_is_named() {
    let on = "cluster.enabled = true\nnet.listen = \"127.0.0.1:7070\"\n";
    let err = err_toml(&format!("{on}cluster.groups = [\"ok\", \"xg:sure\"]\n"));
    assert!(
        matches!(&err, ConfigError::BadValue(e) if e.key == "cluster.groups" && matches!(e.origin, Origin::Toml { line: 3, .. }))
    );
    assert_mentions(
        &err,
        &["`cluster.groups`", "\"xg:sure\"", "\"sure\" is no guarantee", "unordered, fifo, agreed, safe"],
    );

    let err = err_env(&[("RINGFLOW_CLUSTER_GROUPS", "xg:safe,yg:Safety")]);
    assert!(
        matches!(&err, ConfigError::BadValue(e) if e.key == "cluster.groups" && e.origin == Origin::Env { var: "RINGFLOW_CLUSTER_GROUPS".into() })
    );
    assert_mentions(&err, &["RINGFLOW_CLUSTER_GROUPS", "\"yg:Safety\"", "\"Safety\" is no guarantee"]);

    let err = EngineConfig::builder().cluster_groups(["xg:"]).build().unwrap_err();
    assert!(matches!(&err, ConfigError::BadValue(e) if e.key == "cluster.groups" && e.origin == Origin::Builder));
    assert_mentions(&err, &["\"xg:\"", "\"\" is no guarantee"]);

    let err = EngineConfig::builder().cluster_group("a:b", Guarantee::Safe).build().unwrap_err();
    assert_mentions(&err, &["`cluster.groups`", "\"a:b:safe\"", "cannot hold ':'"]);
    let err = EngineConfig::builder().cluster_groups(["xg", "xg:safe"]).build().unwrap_err();
    assert_mentions(&err, &["`cluster.groups`", "\"xg\" is named twice"]);
    let err = EngineConfig::builder().cluster_groups([":safe"]).build().unwrap_err();
    assert_mentions(&err, &["`cluster.groups`", "empty"]);
}
