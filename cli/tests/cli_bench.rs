//! `ringflow bench`'s output options: the combinations it refuses are
//! refused before anything is measured, with a message saying why.

use std::process::Command;

/// Runs `ringflow bench <args>`; returns success and stderr.
fn bench(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringflow")).arg("bench").args(args).output().expect("run ringflow");
    (out.status.success(), String::from_utf8(out.stderr).expect("UTF-8"))
}

#[test]
fn files_for_the_whole_job_go_to_its_report_directory() {
    let (ok, err) = bench(&["--hdr", "somewhere"]);
    assert!(!ok);
    assert!(err.contains("--hdr and --plot go with a scenario") && err.contains("--out DIR"), "{err}");
    assert!(!err.contains("[1/"), "nothing may run: {err}");
}

#[test]
fn conflicting_options_are_refused() {
    for args in [&["ring", "--quick", "--full"][..], &["ring", "--out", "d", "--plot", "p.svg"]] {
        let (ok, err) = bench(args);
        assert!(!ok && err.contains("cannot be used with"), "{args:?}: {err}");
    }
}
