//! Runs one (scenario, case, impl) for a while and prints its figures: for
//! profiling a single impl (`perf record`) without the rest of a scenario.
//! `cargo run --release -p ringflow-bench --example one_case -- flow stream-1MiB-zerocopy ringflow [SECONDS]`

use std::time::Duration;

use ringflow_bench::{scenarios, Pins, RunCtx};

fn main() {
    if let Some(code) = ringflow_bench::processes::serve_if_peer() {
        std::process::exit(if code == std::process::ExitCode::SUCCESS { 0 } else { 1 });
    }
    ringflow_bench::processes::enable_peer_binary();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [scenario, case, imp] = [0, 1, 2].map(|i| args.get(i).cloned().unwrap_or_default());
    let secs: f64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let all = scenarios::all();
    let Some(s) = all.iter().find(|s| s.name == scenario) else {
        eprintln!("usage: one_case SCENARIO CASE IMPL [SECONDS]; scenarios: {:?}", scenarios::names());
        std::process::exit(2);
    };
    let cases = (s.cases)();
    let Some(c) = cases.iter().find(|c| c.name == case) else {
        eprintln!("cases of {scenario}: {:?}", cases.iter().map(|c| c.name).collect::<Vec<_>>());
        std::process::exit(2);
    };
    let Some(i) = c.impls.iter().find(|i| i.names().any(|n| n == imp)) else {
        eprintln!("impls of {case}: {:?}", c.impls.iter().flat_map(|i| i.names()).collect::<Vec<_>>());
        std::process::exit(2);
    };
    let ctx = RunCtx {
        pins: Pins::detect(),
        warmup: Duration::from_millis(200),
        measure: Duration::from_secs_f64(secs),
        yielding: false,
    };
    // An alternating impl measures all its variants at once: print each.
    match i.measure(&ctx) {
        Ok(ms) => {
            for (name, m) in i.names().zip(ms) {
                println!(
                    "{scenario}/{case}/{name}: {:.2}M msgs/s, p50 {} ns, p99 {} ns, n {}",
                    m.msgs_per_sec() / 1e6,
                    m.hist.value_at_quantile(0.5),
                    m.hist.value_at_quantile(0.99),
                    m.msgs
                );
            }
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
