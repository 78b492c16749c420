//! What flows cost a process besides time: descriptors and resident memory
//! per flow, measured by opening `Flow::pair`s in this process and counting
//! `/proc/self/fd` and the resident pages of `/proc/self/statm` before and
//! after (both ends of each pair live here, so a pair's figures are a
//! flow's). Reported as lines of the `flow` scenario (case `footprint`),
//! for rings prefaulted at setup and touched lazily (`FlowOptions::prefault`).

use ringflow_api::{Flow, FlowOptions, Qos};

use crate::error::BenchError;
use crate::flow::err;

/// Flows opened per measurement (the lines scale to 1,000).
const FLOWS: usize = 200;

/// Descriptors and resident bytes one flow adds.
#[derive(Clone, Copy, Debug)]
pub struct Footprint {
    /// Descriptors per flow (both ends).
    pub fds: f64,
    /// Resident bytes per flow (both ends; the rings' pages count once).
    pub resident: f64,
}

/// The footprint of `n` pairs of `qos`, prefaulted or not.
pub fn of_pairs(n: usize, qos: &Qos, prefault: bool) -> Result<Footprint, BenchError> {
    // The first pair opens what the process keeps (the peer watcher, the
    // stats file): count after it.
    drop(Flow::pair_with(qos, FlowOptions::new().prefault(prefault)).map_err(|e| err("Flow::pair", e))?);
    let (fds, resident) = (open_fds()?, resident_bytes()?);
    let mut pairs = Vec::with_capacity(n);
    for _ in 0..n {
        pairs.push(Flow::pair_with(qos, FlowOptions::new().prefault(prefault)).map_err(|e| err("Flow::pair", e))?);
    }
    let (fds_now, resident_now) = (open_fds()?, resident_bytes()?);
    drop(pairs);
    Ok(Footprint {
        fds: (fds_now.saturating_sub(fds)) as f64 / n as f64,
        resident: resident_now.saturating_sub(resident) as f64 / n as f64,
    })
}

/// The report's lines: per 1,000 flows, for the set-wake cases' rings and
/// for `Qos::data()`, prefaulted and lazy, measured over 200 pairs each
/// after a first round of 200 that is not reported.
pub fn lines() -> Vec<String> {
    let cases =
        [("4 KiB rings (set-wake)", Qos::data().with_ring_bytes(4096)), ("Qos::data(), 256 KiB rings", Qos::data())];
    let mut lines = Vec::new();
    // A first round, not reported, grows what the process keeps across
    // flows (the stats file's slots, the allocator's arenas), so that the
    // figures are the flows' own whichever comes first.
    if let Err(e) = of_pairs(FLOWS, &cases[0].1, false) {
        return vec![format!("footprint not measured: {e}")];
    }
    for (what, qos) in cases {
        for prefault in [true, false] {
            let mode = if prefault { "prefaulted" } else { "lazy" };
            lines.push(match of_pairs(FLOWS, &qos, prefault) {
                Ok(f) => format!(
                    "footprint per 1,000 flows (Flow::pair, {what}, {mode}): {:.0} descriptors, {:.1} MB resident",
                    f.fds * 1000.0,
                    f.resident * 1000.0 / 1e6
                ),
                Err(e) => format!("footprint ({what}, {mode}) not measured: {e}"),
            });
        }
    }
    lines
}

fn open_fds() -> Result<usize, BenchError> {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .map_err(|source| BenchError::Os { call: "read /proc/self/fd", source })
}

fn resident_bytes() -> Result<u64, BenchError> {
    let statm = std::fs::read_to_string("/proc/self/statm")
        .map_err(|source| BenchError::Os { call: "read /proc/self/statm", source })?;
    let pages: u64 = statm.split(' ').nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf reads a configuration value only.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    Ok(pages * page)
}
