//! The `ringflow` command line: `ringflow bench [scenario] [--quick | --full]
//! [--json] [--hdr DIR] [--plot FILE.svg] [--out DIR]`,
//! `ringflow config [--file FILE]`, `ringflow engine [--config FILE]`,
//! `ringflow doctor [--config FILE] [--json]`, `ringflow stat [--json]`,
//! `ringflow ls [--json]`, `ringflow ping NAME [-c COUNT] [-s SIZE] [-i INTERVAL]`,
//! `ringflow pong NAME [--remote] [--once]`; `-v` / RINGFLOW_LOG for the log.

mod log;
mod ping;
mod pong;
mod stat;
mod stat_cluster;
mod stat_group;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clap::{Parser, Subcommand};
use ringflow_bench::{Mode, Options};

#[derive(Parser)]
#[command(name = "ringflow", version, about = "Lock-free shared-memory message transport")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log more of what the engine does on stderr: -v info (connections,
    /// links, flows), -vv debug, -vvv trace. RINGFLOW_LOG (an EnvFilter,
    /// e.g. "ringflow_core::remote=debug") overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
}

#[derive(Subcommand)]
enum Command {
    /// Measure ringflow against its peers and the physical limit, in one run.
    /// Without a scenario: every scenario, quick, and a report directory
    /// (--out) with report.txt, report.jsonl, plots.svg and hdr/.
    Bench {
        /// Scenario to run (all when omitted).
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(ringflow_bench::scenarios::names()))]
        scenario: Option<String>,
        /// Short runs (about a fifth of the full duration); the default
        /// without a scenario.
        #[arg(long, conflicts_with = "full")]
        quick: bool,
        /// Full-length runs; the default with a scenario.
        #[arg(long)]
        full: bool,
        /// One JSON object per line instead of tables.
        #[arg(long)]
        json: bool,
        /// Write each (case, impl) latency histogram as an HdrHistogram
        /// interval log, <scenario>.<case>.<impl>.hlog, into DIR.
        #[arg(long, value_name = "DIR")]
        hdr: Option<PathBuf>,
        /// Draw every case into one SVG: latency by percentile, msgs/s bars.
        #[arg(long, value_name = "FILE.svg")]
        plot: Option<PathBuf>,
        /// Write the report directory here (report.txt, report.jsonl,
        /// plots.svg, hdr/); without a scenario it defaults to
        /// ./ringflow-report.
        #[arg(long, value_name = "DIR", conflicts_with_all = ["hdr", "plot"])]
        out: Option<PathBuf>,
    },
    /// Check the engine configuration and print it in full: defaults, then
    /// the file (--config, else $RINGFLOW_CONFIG), then RINGFLOW_* overrides.
    /// Exits non-zero with the key, value and what is allowed when refused.
    Config {
        /// A ringflow.toml to read instead of $RINGFLOW_CONFIG (`--file`,
        /// its old name, still works).
        #[arg(long = "config", alias = "file")]
        file: Option<std::path::PathBuf>,
    },
    /// Inspect this host for ringflow, item by item with the fix: memfd,
    /// io_uring and its features, locked memory, cores against the engine's
    /// threads, isolated CPUs, frequency governor, huge pages, VM, /dev/shm.
    /// Exits non-zero when something blocks ringflow.
    Doctor {
        /// A ringflow.toml to read instead of $RINGFLOW_CONFIG.
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        /// One JSON object per item instead of the list.
        #[arg(long)]
        json: bool,
    },
    /// List the running ringflow processes of this user with their flows
    /// and engine threads: counts, rates and latency percentiles, read live
    /// from their stats files; and the groups with their members, each
    /// member's lag behind the log's tail, the slowest named. Refreshes
    /// like top; --json prints once.
    Stat {
        /// One JSON object per process, per flow or engine thread, per group
        /// and per group member, once.
        #[arg(long)]
        json: bool,
        /// Print once (rates over --window-ms) instead of refreshing.
        #[arg(long)]
        once: bool,
        /// Refresh period of the live view.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        /// Span over which rates are measured when printing once.
        #[arg(long, default_value_t = 250)]
        window_ms: u64,
        /// The runtime directory to read (default: the user's).
        #[arg(long)]
        runtime_dir: Option<std::path::PathBuf>,
    },
    /// List the bound names, live flows, and groups with their members.
    Ls {
        /// One JSON object per name, per flow end, per group and per member.
        #[arg(long)]
        json: bool,
        /// The runtime directory to read (default: the user's).
        #[arg(long)]
        runtime_dir: Option<std::path::PathBuf>,
    },
    /// Measure a path's round trip, like ping(8) with percentiles: allocate
    /// a flow to NAME (local, or name@host:port through an engine), send,
    /// time each echo; a line per second, then p50/p90/p99/p99.9/max.
    Ping {
        /// The name to allocate (`ringflow pong NAME` echoes).
        name: String,
        /// Round trips to make (default: until Ctrl-C).
        #[arg(short = 'c', long)]
        count: Option<u64>,
        /// Bytes per message.
        #[arg(short = 's', long, default_value_t = 64)]
        size: usize,
        /// Pause from one round trip's start to the next: seconds as ping(8)
        /// takes them, or with a unit (200us, 1ms); 0 is back to back.
        #[arg(short = 'i', long, default_value = "0", value_parser = ping::parse_interval)]
        interval: Duration,
        /// How long to wait for the flow and for each echo, in milliseconds.
        #[arg(long, default_value_t = 5000)]
        timeout_ms: u64,
        /// The runtime directory to use (default: the user's).
        #[arg(long)]
        runtime_dir: Option<std::path::PathBuf>,
    },
    /// Bind NAME and echo every message of every flow to it (for `ringflow
    /// ping`), saying when each flow arrives and leaves.
    Pong {
        /// The name to bind.
        name: String,
        /// Take flows from other hosts too (through this host's engine).
        #[arg(long)]
        remote: bool,
        /// Exit once the first flow has left.
        #[arg(long)]
        once: bool,
        /// The runtime directory to use (default: the user's).
        #[arg(long)]
        runtime_dir: Option<std::path::PathBuf>,
    },
    /// Run the engine standalone: it carries flows to and from other hosts
    /// for every process of this host that attaches to it (they do when it
    /// runs), and accepts flows from remote engines at `net.listen`.
    /// Ctrl-C (or SIGTERM) stops it cleanly, flushing reliable data for up
    /// to --flush-ms; a second Ctrl-C exits at once.
    Engine {
        /// A ringflow.toml to read instead of $RINGFLOW_CONFIG.
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        /// How long a clean stop waits for reliable data to be acknowledged.
        #[arg(long, default_value_t = 5000)]
        flush_ms: u64,
    },
}

/// Defaults, then the file (`file`, else $RINGFLOW_CONFIG), then RINGFLOW_*.
fn load_config(file: Option<std::path::PathBuf>) -> Result<ringflow::EngineConfig, ringflow::ConfigError> {
    ringflow::config::process_vars().and_then(|mut vars| {
        if let Some(path) = file {
            // The last RINGFLOW_CONFIG wins: --file stands in for it.
            vars.push((ringflow::config::CONFIG_ENV.to_owned(), path.display().to_string()));
        }
        ringflow::EngineConfig::load_with(vars)
    })
}

fn config(file: Option<std::path::PathBuf>) -> ExitCode {
    match load_config(file) {
        Ok(c) => {
            print!("{}", c.to_toml_string());
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(io::stderr(), "ringflow config: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Signals (SIGINT, SIGTERM) received so far.
static STOPS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_stop_signal(_: libc::c_int) {
    // SYNC: Relaxed; the main loop polls the count, nothing else rides on it.
    if STOPS.fetch_add(1, Ordering::Relaxed) > 0 {
        // The second signal: out at once (async-signal-safe).
        // SAFETY: _exit ends the process without running anything else.
        unsafe { libc::_exit(130) };
    }
}

/// Makes SIGINT and SIGTERM ask for a clean stop ([`stopped`]); a second
/// one exits at once.
fn install_stop_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only touches an atomic and calls _exit, both
        // async-signal-safe.
        unsafe { libc::signal(sig, on_stop_signal as *const () as libc::sighandler_t) };
    }
}

/// Whether a stop was asked for (SIGINT or SIGTERM).
fn stopped() -> bool {
    // SYNC: Relaxed; see `on_stop_signal`.
    STOPS.load(Ordering::Relaxed) > 0
}

fn engine(file: Option<std::path::PathBuf>, flush: Duration) -> ExitCode {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        let _ = writeln!(io::stderr(), "ringflow engine: {what}: {e}");
        ExitCode::FAILURE
    };
    let config = match load_config(file) {
        Ok(c) => c,
        Err(e) => return fail("configuration refused", &e),
    };
    if config.engine().mode == ringflow::config::ThreadingMode::Invoker {
        return fail(
            "engine.mode",
            &"a standalone engine needs \"dedicated\" (invoker mode runs inside an application)",
        );
    }
    let engine = match ringflow::remote::RemoteEngine::start(&config, None) {
        Ok(e) => e,
        Err(e) => return fail("cannot start", &e),
    };
    let host = match engine.serve_host(None) {
        Ok(h) => h,
        Err(e) => return fail("cannot serve this host", &e),
    };
    install_stop_handlers();
    let listen = engine.listen_addr().map_or_else(|| "nowhere (net.listen unset)".to_owned(), |a| a.to_string());
    let _ = writeln!(
        io::stderr(),
        "ringflow engine: serving this host as {:?}; remote engines reach it at {listen}. Ctrl-C stops.",
        ringflow::remote::ENGINE_NAME
    );
    while !stopped() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ =
        writeln!(io::stderr(), "ringflow engine: stopping (flushing for up to {flush:?}; Ctrl-C again to quit now)");
    drop(host);
    match engine.shutdown_within(flush) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            let _ = writeln!(io::stderr(), "ringflow engine: stopped before every reliable message was acknowledged");
            ExitCode::FAILURE
        }
        Err(e) => fail("stopping", &e),
    }
}

fn doctor(file: Option<std::path::PathBuf>, json: bool) -> ExitCode {
    let config = match load_config(file) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(io::stderr(), "ringflow doctor: configuration refused: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = ringflow::doctor::examine(&config);
    let mut out = io::stdout().lock();
    if json {
        let _ = write!(out, "{}", report.to_json_lines());
    } else {
        for item in &report.items {
            let _ = writeln!(out, "{item}");
        }
        let verdict =
            if report.blocked() { "something blocks ringflow (see BLOCKER)" } else { "nothing blocks ringflow" };
        let _ = writeln!(out, "\n{verdict}");
    }
    if report.blocked() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Why `ringflow bench --hdr/--plot` without a scenario is refused: the
/// whole job's report directory already holds both.
const NO_FILES_WITHOUT_A_SCENARIO: &str = "--hdr and --plot go with a scenario; without one, the report \
     directory (--out DIR, default ./ringflow-report) holds hdr/ and plots.svg";

/// What `ringflow bench` was asked.
struct BenchArgs {
    scenario: Option<String>,
    quick: bool,
    full: bool,
    json: bool,
    hdr: Option<PathBuf>,
    plot: Option<PathBuf>,
    out: Option<PathBuf>,
}

fn bench(args: BenchArgs) -> ExitCode {
    let fail = |e: &dyn std::fmt::Display| {
        let _ = writeln!(io::stderr(), "ringflow bench: {e}");
        ExitCode::FAILURE
    };
    // The whole job (no scenario) is a quick look at everything; a named
    // scenario is measured at full length unless asked otherwise.
    let mode = match (args.quick, args.full) {
        (true, _) => Mode::Quick,
        (_, true) => Mode::Full,
        _ if args.scenario.is_none() => Mode::Quick,
        _ => Mode::Full,
    };
    let report_dir = match (&args.out, &args.scenario) {
        (Some(dir), _) => Some(dir.clone()),
        (None, None) if args.hdr.is_none() && args.plot.is_none() => Some(PathBuf::from(ringflow_bench::DEFAULT_DIR)),
        (None, None) => return fail(&NO_FILES_WITHOUT_A_SCENARIO),
        (None, Some(_)) => None,
    };
    // Neither stream is held locked for the run: the engines' threads log
    // through tracing to stderr while it runs, and a side thread blocked on
    // a lock this thread holds, while this thread joins it, hung the bench.
    let (mut out, mut progress) = (io::stdout(), io::stderr());
    let result = match &report_dir {
        Some(dir) => {
            ringflow_bench::run_into_dir(args.scenario.as_deref(), mode, args.json, dir, &mut out, &mut progress)
        }
        None => {
            let opts = Options { mode, json: args.json, hdr_dir: args.hdr, plot: args.plot };
            ringflow_bench::run(args.scenario.as_deref(), &opts, &mut out, &mut progress)
        }
    };
    let reports = match result {
        Ok(reports) => reports,
        Err(e) => return fail(&e),
    };
    if let Some(dir) = &report_dir {
        report_written(dir, args.json, &mut out, &mut progress);
    }
    if reports.iter().all(|r| r.failures.is_empty()) {
        ExitCode::SUCCESS
    } else {
        fail(&"some impls failed (see FAILED above)")
    }
}

/// Says where the report is: last on stdout after the tables, or on
/// stderr when stdout carries JSON lines (a parser reads every line).
fn report_written(dir: &Path, json: bool, out: &mut dyn Write, progress: &mut dyn Write) {
    let line = format!("report written to {}: report.txt, report.jsonl, plots.svg, hdr/", dir.display());
    let _ = if json { writeln!(progress, "{line}") } else { writeln!(out, "{line}") };
}

fn main() -> ExitCode {
    // A child of a cross-process bench case serves its side and nothing else.
    if let Some(code) = ringflow_bench::processes::serve_if_peer() {
        return code;
    }
    ringflow_bench::processes::enable_peer_binary();
    let cli = Cli::parse();
    if let Err(e) = log::init(cli.verbose) {
        let _ = writeln!(io::stderr(), "ringflow: {e}");
        return ExitCode::from(2);
    }
    match cli.command {
        Command::Doctor { config, json } => doctor(config, json),
        Command::Stat { json, once, interval_ms, window_ms, runtime_dir } => stat::stat(stat::StatArgs {
            dir: runtime_dir,
            json,
            every: (!json && !once).then(|| Duration::from_millis(interval_ms.max(50))),
            window: Duration::from_millis(window_ms),
        }),
        Command::Ls { json, runtime_dir } => stat::ls(runtime_dir, json),
        Command::Config { file } => config(file),
        Command::Ping { name, count, size, interval, timeout_ms, runtime_dir } => ping::ping(ping::PingArgs {
            name,
            count,
            size,
            interval,
            timeout: Duration::from_millis(timeout_ms),
            runtime_dir,
        }),
        Command::Pong { name, remote, once, runtime_dir } => {
            pong::pong(pong::PongArgs { name, remote, once, runtime_dir })
        }
        Command::Engine { config, flush_ms } => engine(config, Duration::from_millis(flush_ms)),
        Command::Bench { scenario, quick, full, json, hdr, plot, out } => {
            bench(BenchArgs { scenario, quick, full, json, hdr, plot, out })
        }
    }
}
