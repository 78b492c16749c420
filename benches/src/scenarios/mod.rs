//! The registry of scenarios, by name.
//!
//! To add a scenario: write `scenarios/<name>.rs` with a
//! `pub fn scenario() -> Scenario` (cases, each with a `limit` impl first and
//! the others after, plus its checks), declare the module here and add it to
//! [`all`]. The harness, report, JSON and CLI pick it up by name.

pub mod flow;
pub mod group;
pub mod group_remote;
pub mod remote;
pub mod ring;
pub mod rpc;

use crate::scenario::Scenario;

/// Every scenario, in the order `ringflow bench` runs them.
pub fn all() -> Vec<Scenario> {
    vec![
        ring::scenario(),
        flow::scenario(),
        rpc::scenario(),
        group::scenario(),
        remote::scenario(),
        group_remote::scenario(),
    ]
}

/// The names of all scenarios.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|s| s.name).collect()
}

/// The note of a case that has an iceoryx2 impl, when the build left it out.
pub(crate) fn iceoryx2_notes() -> Vec<String> {
    if cfg!(feature = "iceoryx2") {
        Vec::new()
    } else {
        vec!["iceoryx2 skipped: built without feature `iceoryx2`".to_string()]
    }
}

/// What the scenarios' smoke tests share.
#[cfg(test)]
pub(crate) mod smoke {
    use std::collections::BTreeSet;

    use crate::harness::{run, Mode, Options};
    use crate::report::ScenarioReport;
    use crate::scenario::Scenario;

    /// Holds the machine for one test that runs engines and spinning
    /// pairs (a scenario's smoke run, a remote or crossing-group run): the
    /// test binary runs its tests in parallel, and two such runs on two
    /// cores starved each other's invoker-mode engines into "no progress"
    /// (1 run of the binary in 6-12, in CI and here: remote and rpc cases,
    /// every impl of the case, the same before this session's changes).
    pub(crate) fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
        static MACHINE: std::sync::Mutex<()> = std::sync::Mutex::new(());
        MACHINE.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An empty directory of its own for test `name`, removed with
    /// everything in it when dropped (also when the test fails).
    pub(crate) fn fresh_dir(name: &str) -> ringflow_testkit::TempDir {
        ringflow_testkit::temp_dir(&format!("bench-{name}"))
    }

    /// Runs scenario `name` in smoke mode and checks what holds for every
    /// scenario: no impl failed, every declared (case, impl) was measured,
    /// every check was evaluated and printed. Returns the report, the
    /// scenario and what was printed, for the scenario's own assertions.
    pub(crate) fn run_scenario(name: &str) -> (ScenarioReport, Scenario, String) {
        run_scenario_with(name, &Options { mode: Mode::Smoke, ..Options::default() })
    }

    /// [`run_scenario`] with other options (e.g. files to write); the
    /// mode should stay [`Mode::Smoke`] and `json` off.
    pub(crate) fn run_scenario_with(name: &str, opts: &Options) -> (ScenarioReport, Scenario, String) {
        let _machine = one_at_a_time();
        // Engines and flows keep their statistics in the default runtime
        // directory.
        ringflow_testkit::isolate_runtime_dir();
        let mut out = Vec::new();
        let mut reports = run(Some(name), opts, &mut out, &mut std::io::sink()).expect("run");
        let report = reports.remove(0);
        assert!(report.failures.is_empty(), "failures: {:?}", report.failures);
        let scenario = super::all().into_iter().find(|s| s.name == name).expect("registered");
        let declared: BTreeSet<_> = (scenario.cases)()
            .iter()
            .flat_map(|c| c.impls.iter().flat_map(|i| i.names()).map(|n| (c.name, n)).collect::<Vec<_>>())
            .collect();
        let measured: BTreeSet<_> = report.records.iter().map(|r| (r.case, r.imp)).collect();
        assert_eq!(measured, declared);
        assert_eq!(report.checks.len(), scenario.checks.len());
        let out = String::from_utf8(out).expect("utf-8");
        for c in &report.checks {
            assert!(out.contains(&c.line()), "{}", c.line());
        }
        (report, scenario, out)
    }
}
