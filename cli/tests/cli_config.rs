//! `ringflow config`: prints the effective configuration, or refuses with
//! the key, the value and what is allowed (and a non-zero exit code).

use std::process::Command;

fn ringflow_config(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringflow"));
    cmd.arg("config").args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("RINGFLOW_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run ringflow")
}

#[test]
fn the_shipped_file_is_accepted_and_printed() {
    let out = ringflow_config(&["--config", concat!(env!("CARGO_MANIFEST_DIR"), "/../ringflow.toml")], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[engine]") && text.contains("threads = 1"), "{text}");
}

#[test]
fn bad_values_and_unknown_variables_are_refused_with_what_is_allowed() {
    let dir = ringflow_testkit::temp_dir("cli");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[engine]\nthreads = 99\n").unwrap();
    let out = ringflow_config(&["--file", bad.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("engine.threads") && err.contains("99") && err.contains("1 to 64"), "{err}");

    let out = ringflow_config(&[], &[("RINGFLOW_ENGINE_THREDS", "2")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("RINGFLOW_ENGINE_THREDS") && err.contains("RINGFLOW_ENGINE_THREADS"), "{err}");

    let out = ringflow_config(&[], &[("RINGFLOW_ENGINE_THREADS", "2")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("threads = 2"));
}
