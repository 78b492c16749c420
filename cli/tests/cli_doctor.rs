//! `ringflow doctor`: runs on any host, reports io_uring as the process
//! itself finds it, and exits non-zero exactly when something blocks.

use std::process::Command;

fn doctor(env: &[(&str, &str)]) -> (bool, Vec<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringflow"));
    cmd.args(["doctor", "--json"]);
    for (k, _) in std::env::vars() {
        if k.starts_with("RINGFLOW_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("run ringflow doctor");
    let lines = String::from_utf8(out.stdout).expect("UTF-8").lines().map(str::to_owned).collect();
    (out.status.success(), lines)
}

fn item<'a>(lines: &'a [String], name: &str) -> &'a str {
    let key = format!("{{\"item\":\"{name}\",");
    lines.iter().find(|l| l.starts_with(&key)).unwrap_or_else(|| panic!("no item {name} in {lines:?}"))
}

#[test]
fn every_item_is_reported_and_io_uring_matches_the_probe() {
    let (ok, lines) = doctor(&[]);
    for name in [
        "memfd",
        "io_uring",
        "memlock",
        "descriptors",
        "cores",
        "isolation",
        "governor",
        "huge_pages",
        "virtualization",
        "dev_shm",
        "engine_key",
    ] {
        let line = item(&lines, name);
        assert!(
            line.contains("\"verdict\":\"") && line.contains("\"found\":\"") && line.contains("\"fix\":"),
            "{line}"
        );
    }
    let probed = ringflow_core::uring::probe(ringflow::EngineConfig::default().io_uring());
    let uring = item(&lines, "io_uring");
    // By default the engine falls back to plain sockets: advice, not a blocker.
    assert!(!uring.contains("\"verdict\":\"blocker\""), "{uring}");
    assert!(probed.is_ok() || uring.contains("\"verdict\":\"advice\""), "{uring}");
    let blocked = lines.iter().any(|l| l.contains("\"verdict\":\"blocker\""));
    assert_eq!(ok, !blocked, "the exit status says whether something blocks");
}

#[test]
fn io_uring_refused_is_advice_by_default_and_a_blocker_when_required() {
    let (ok, lines) = doctor(&[("RINGFLOW_TEST_URING_ERRNO", "1")]);
    let uring = item(&lines, "io_uring");
    assert!(uring.contains("\"verdict\":\"advice\"") && uring.contains("EPERM"), "{uring}");
    assert!(uring.contains("plain sockets"), "the fallback is named: {uring}");
    assert!(ok, "the engine still works: {lines:?}");

    let (ok, lines) = doctor(&[("RINGFLOW_TEST_URING_ERRNO", "1"), ("RINGFLOW_NET_BACKEND", "io_uring")]);
    let uring = item(&lines, "io_uring");
    assert!(uring.contains("\"verdict\":\"blocker\"") && uring.contains("EPERM"), "{uring}");
    assert!(!ok, "a blocker fails the command");
    // Local flows still work, and the doctor says so about memfd.
    assert!(item(&lines, "memfd").contains("\"verdict\":\"ok\""));
}

#[test]
fn an_engine_listening_beyond_loopback_without_a_key_is_flagged() {
    let (_, lines) = doctor(&[("RINGFLOW_NET_LISTEN", "0.0.0.0:7070")]);
    let key = item(&lines, "engine_key");
    assert!(key.contains("\"verdict\":\"advice\"") && key.contains("without a key"), "{key}");
    assert!(key.contains("net.key_file"), "the fix names the key: {key}");
    let (_, lines) = doctor(&[("RINGFLOW_NET_LISTEN", "127.0.0.1:7070")]);
    assert!(item(&lines, "engine_key").contains("\"verdict\":\"info\""), "{lines:?}");
}
