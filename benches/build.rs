//! Records the commit the bench was built from, for its report's head:
//! `BENCH_BUILD_COMMIT` is `git rev-parse HEAD` when built in a git
//! checkout, else "unknown"; with "+changes" when tracked files differed
//! from that commit when this script last ran (it reruns when HEAD or its
//! branch moves, not on every edit: a build from an edited tree may say
//! the commit alone).
//!
//! Not a `RINGFLOW_*` name: cargo also sets it in the environment of what
//! it runs (tests, `cargo run`), and every `RINGFLOW_*` variable there is
//! read as configuration, an unknown one refused.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn main() {
    let commit = git(&["rev-parse", "HEAD"]).filter(|c| !c.is_empty());
    let changed =
        commit.is_some() && git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    let text = match commit {
        Some(c) if changed => format!("{c}+changes"),
        Some(c) => c,
        None => "unknown".to_owned(),
    };
    println!("cargo:rustc-env=BENCH_BUILD_COMMIT={text}");
    if let Some(p) = git(&["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={p}");
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(p) = git(&["rev-parse", "--git-path", &branch]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
