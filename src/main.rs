//! The `ringflow` command line: `ringflow bench [scenario] [--quick] [--json]`,
//! `ringflow config [--file FILE]`.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ringflow_bench::{Mode, Options};

#[derive(Parser)]
#[command(name = "ringflow", version, about = "Lock-free shared-memory message transport")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure ringflow against its peers and the physical limit, in one run.
    Bench {
        /// Scenario to run (all when omitted).
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(ringflow_bench::scenarios::names()))]
        scenario: Option<String>,
        /// Short runs (about a fifth of the default duration).
        #[arg(long)]
        quick: bool,
        /// One JSON object per line instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Check the engine configuration and print it in full: defaults, then
    /// the file (--file, else $RINGFLOW_CONFIG), then RINGFLOW_* overrides.
    /// Exits non-zero with the key, value and what is allowed when refused.
    Config {
        /// A ringflow.toml to read instead of $RINGFLOW_CONFIG.
        #[arg(long)]
        file: Option<std::path::PathBuf>,
    },
}

fn config(file: Option<std::path::PathBuf>) -> ExitCode {
    let loaded = ringflow::config::process_vars().and_then(|mut vars| {
        if let Some(path) = file {
            // The last RINGFLOW_CONFIG wins: --file stands in for it.
            vars.push((ringflow::config::CONFIG_ENV.to_owned(), path.display().to_string()));
        }
        ringflow::EngineConfig::load_with(vars)
    });
    match loaded {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Config { file } => config(file),
        Command::Bench { scenario, quick, json } => {
            let opts = Options { mode: if quick { Mode::Quick } else { Mode::Full }, json };
            let stdout = io::stdout();
            let stderr = io::stderr();
            let result = ringflow_bench::run(scenario.as_deref(), &opts, &mut stdout.lock(), &mut stderr.lock());
            match result {
                Ok(reports) if reports.iter().all(|r| r.failures.is_empty()) => ExitCode::SUCCESS,
                Ok(_) => {
                    let _ = writeln!(io::stderr(), "ringflow bench: some impls failed (see FAILED above)");
                    ExitCode::FAILURE
                }
                Err(e) => {
                    let _ = writeln!(io::stderr(), "ringflow bench: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
