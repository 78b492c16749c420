//! Where the `ringflow` command's log goes: the library's `tracing` events
//! (engine start and stop, links to other engines, remote flows, errors
//! with their cause) printed on stderr, one line each with their fields.
//! `-v` / `-vv` / `-vvv` raise the level from warnings to info, debug and
//! trace; `RINGFLOW_LOG`, when set, is an `EnvFilter` that decides instead
//! (`RINGFLOW_LOG=ringflow_core::remote=debug`). The library never
//! installs a subscriber: only this command does.

use tracing_subscriber::EnvFilter;

/// The variable holding a filter that overrides `-v` (`RINGFLOW_LOG`).
pub(crate) use ringflow::config::LOG_ENV;

/// The filter to install: `env` (the value of [`LOG_ENV`]) when set and
/// not blank, else the level `verbose` (the count of `-v`) names.
pub(crate) fn directives(verbose: u8, env: Option<&str>) -> String {
    match env.map(str::trim).filter(|e| !e.is_empty()) {
        Some(e) => e.to_owned(),
        None => match verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }
        .to_owned(),
    }
}

/// Installs the stderr subscriber; an unreadable `RINGFLOW_LOG` is an
/// error naming it.
pub(crate) fn init(verbose: u8) -> Result<(), String> {
    let env = std::env::var(LOG_ENV).ok();
    let wanted = directives(verbose, env.as_deref());
    let filter = EnvFilter::builder().parse(&wanted).map_err(|e| {
        format!("{LOG_ENV}={wanted:?} is not a log filter (e.g. \"info\", \"ringflow_core=debug\"): {e}")
    })?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init()
        .map_err(|e| format!("cannot install the log: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_v_raises_the_level_and_the_variable_decides_when_set() {
        assert_eq!(directives(0, None), "warn");
        assert_eq!(directives(1, None), "info");
        assert_eq!(directives(2, None), "debug");
        assert_eq!(directives(5, None), "trace");
        assert_eq!(directives(0, Some("ringflow_core::remote=debug")), "ringflow_core::remote=debug");
        assert_eq!(directives(2, Some("error")), "error");
        // Blank is unset.
        assert_eq!(directives(1, Some("  ")), "info");
    }

    #[test]
    fn a_filter_that_does_not_parse_is_refused() {
        assert!(EnvFilter::builder().parse(directives(0, Some("ringflow_core=loud"))).is_err());
        assert!(EnvFilter::builder().parse(directives(0, Some("ringflow_core=debug,warn"))).is_ok());
    }
}
