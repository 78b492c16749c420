//! The `ringflow` command line: `ringflow bench [scenario] [--quick] [--json]`.

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
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
