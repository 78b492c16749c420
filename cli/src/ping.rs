//! `ringflow ping NAME`: measures the round trip of a path from the
//! command line, like ping(8) with percentiles. It allocates a flow to
//! NAME (a local name, or `name@host:port` through an engine, as any
//! flow), sends a message, waits for its echo (from `ringflow pong` or any
//! echoing listener), and records each round trip in an HDR histogram:
//! a line per second with that second's percentiles, and at the end
//! p50/p90/p99/p99.9/max of them all.
//!
//! Never asserts or hides a lost echo: one that does not come back within
//! the timeout (or comes back changed) ends the run with an error.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ringflow::stats::Histogram;
use ringflow::{Deadline, Flow, FlowOptions, Qos, RecvError};

/// What `ringflow ping` was asked.
pub(crate) struct PingArgs {
    pub(crate) name: String,
    /// Round trips to make; until Ctrl-C when `None`.
    pub(crate) count: Option<u64>,
    /// Bytes per message.
    pub(crate) size: usize,
    /// Pause between the start of one round trip and the next (0: back to back).
    pub(crate) interval: Duration,
    /// How long to wait for each echo.
    pub(crate) timeout: Duration,
    pub(crate) runtime_dir: Option<PathBuf>,
}

/// A latency histogram from 1 ns to a minute, 3 significant digits.
pub(crate) fn histogram() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).map_err(|e| format!("a latency histogram: {e:?}"))
}

/// `ns` for a person: ns, µs or ms with three significant digits.
pub(crate) fn human_ns(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns} ns"),
        1_000..=999_999 => format!("{:.3} µs", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.3} ms", ns as f64 / 1e6),
        _ => format!("{:.3} s", ns as f64 / 1e9),
    }
}

/// The percentiles ping prints, with their labels.
const PERCENTILES: [(&str, f64); 4] = [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9)];

/// `p50 … p99.9 … max …` of `h`.
pub(crate) fn percentiles_line(h: &Histogram<u64>) -> String {
    let mut line = String::new();
    for (label, q) in PERCENTILES {
        line.push_str(&format!("{label} {}  ", human_ns(h.value_at_quantile(q / 100.0))));
    }
    line.push_str(&format!("max {}", human_ns(h.max())));
    line
}

/// Parses a pause: a number with a unit (`250us`, `1ms`, `0.5s`), or a
/// bare number of seconds as ping(8) takes it.
pub(crate) fn parse_interval(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("{text:?} is not a duration (e.g. 0, 200us, 1ms, 1s)"))?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "ns" => 1e-9,
        other => return Err(format!("unknown unit {other:?} in {text:?} (ns, us, ms, s)")),
    };
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("{text:?}: {e}"))
}

pub(crate) fn ping(args: PingArgs) -> ExitCode {
    let fail = |e: &dyn std::fmt::Display| {
        let _ = writeln!(io::stderr(), "ringflow ping: {e}");
        ExitCode::FAILURE
    };
    let size = args.size.max(1);
    // A QoS's max_msg is at least 64 B (its MIN_MSG).
    let qos = Qos::data().with_max_msg(size.max(64));
    let opts = match &args.runtime_dir {
        Some(dir) => FlowOptions::new().runtime_dir(dir),
        None => FlowOptions::new(),
    };
    let mut flow = match Flow::alloc_with(&args.name, &qos, Deadline::after(args.timeout), opts) {
        Ok(f) => f,
        Err(e) => return fail(&format_args!("cannot reach {:?}: {e}", args.name)),
    };
    if flow.qos().max_msg < size {
        return fail(&format_args!("{:?} takes messages of at most {} B, not {size}", args.name, flow.qos().max_msg));
    }
    crate::install_stop_handlers();
    let mut out = io::stdout().lock();
    let every = if args.interval.is_zero() { "back to back".to_owned() } else { format!("every {:?}", args.interval) };
    let count = args.count.map_or_else(|| "until Ctrl-C".to_owned(), |c| format!("{c} round trips"));
    let _ = writeln!(out, "PING {} ({size} B, {count}, {every})", args.name);

    let mut payload = vec![0u8; size];
    let mut echo = vec![0u8; flow.qos().max_msg];
    let (mut total, mut second) = match (histogram(), histogram()) {
        (Ok(t), Ok(s)) => (t, s),
        (Err(e), _) | (_, Err(e)) => return fail(&e),
    };
    let start = Instant::now();
    let mut last_line = start;
    let mut done = 0u64;
    let outcome = loop {
        if args.count.is_some_and(|c| done >= c) || crate::stopped() {
            break Ok(());
        }
        if !args.interval.is_zero() && done > 0 {
            let due = start + args.interval.saturating_mul(u32::try_from(done).unwrap_or(u32::MAX));
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        // The round trip's number in the message: an echo of another is caught.
        let tag = done.to_le_bytes();
        let n = tag.len().min(size);
        payload[..n].copy_from_slice(&tag[..n]);
        let sent_at = Instant::now();
        if let Err(e) = flow.send(&payload) {
            break Err(format!("send {done}: {e}"));
        }
        let len = match flow.recv_into_timeout(&mut echo, args.timeout) {
            Ok(len) => len,
            Err(RecvError::TimedOut) => break Err(format!("no echo of round trip {done} within {:?}", args.timeout)),
            Err(RecvError::Closed) => break Err(format!("the peer left after {done} round trips")),
            Err(e) => break Err(format!("receive {done}: {e}")),
        };
        let rtt = sent_at.elapsed();
        if echo[..len] != payload[..] {
            break Err(format!("round trip {done}: the echo differs from what was sent ({len} B back)"));
        }
        let ns = u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX);
        total.saturating_record(ns);
        second.saturating_record(ns);
        done += 1;
        if last_line.elapsed() >= Duration::from_secs(1) {
            let _ = writeln!(
                out,
                "{:>6.1} s  {:>9} round trips  {}",
                start.elapsed().as_secs_f64(),
                second.len(),
                percentiles_line(&second)
            );
            second.reset();
            last_line = Instant::now();
        }
    };
    let elapsed = start.elapsed();
    let _ =
        writeln!(out, "--- {} ping: {done} round trips of {size} B in {:.3} s ---", args.name, elapsed.as_secs_f64());
    if done > 0 {
        let _ = writeln!(out, "round trip  {}", percentiles_line(&total));
        let _ = writeln!(out, "            min {}  mean {}", human_ns(total.min()), human_ns(total.mean() as u64));
    }
    let _ = out.flush();
    drop(out);
    match outcome {
        Ok(()) => {
            let _ = flow.dealloc_timeout(args.timeout);
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_read_as_ping_takes_them_with_units_too() {
        assert_eq!(parse_interval("0"), Ok(Duration::ZERO));
        assert_eq!(parse_interval("1"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("0.2"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_interval("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_interval("3ms"), Ok(Duration::from_millis(3)));
        assert_eq!(parse_interval("1s"), Ok(Duration::from_secs(1)));
        assert!(parse_interval("fast").is_err());
        assert!(parse_interval("3 weeks").is_err());
    }

    #[test]
    fn latencies_print_in_the_unit_that_reads() {
        assert_eq!(human_ns(850), "850 ns");
        assert_eq!(human_ns(12_345), "12.345 µs");
        assert_eq!(human_ns(2_500_000), "2.500 ms");
        let mut h = histogram().unwrap();
        for ns in 1..=1000u64 {
            h.record(ns * 1000).unwrap();
        }
        let line = percentiles_line(&h);
        for label in ["p50 ", "p90 ", "p99 ", "p99.9 ", "max "] {
            assert!(line.contains(label), "{line}");
        }
        assert!(line.contains("max 1.000 ms"), "{line}");
        assert!(line.starts_with("p50 500."), "{line}");
    }
}
