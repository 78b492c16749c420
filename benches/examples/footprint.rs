//! Prints the `flow` scenario's footprint lines (descriptors and resident
//! memory per 1,000 flows, prefaulted and lazy) without running its cases.
//! `cargo run --release -p ringflow-bench --example footprint`

fn main() {
    ringflow_testkit::isolate_runtime_dir();
    for line in ringflow_bench::footprint::lines() {
        println!("{line}");
    }
}
