//! `ringflow stat` and `ringflow ls`: what the running ringflow processes
//! of this user publish in their stats files (see `ringflow::stats`),
//! read from outside without ever making them wait.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ringflow::stats::{self, Histogram, ProcessStats, SlotKind, SlotSnapshot};

use crate::{stat_cluster, stat_group};

/// How `stat` shows what it reads.
pub struct StatArgs {
    pub dir: Option<PathBuf>,
    pub json: bool,
    /// Refresh period; `None`: print once.
    pub every: Option<Duration>,
    /// The span over which rates are measured when printing once.
    pub window: Duration,
}

/// A slot's identity across reads (for rates).
pub(crate) type Key = (u32, usize, String);

pub fn stat(args: StatArgs) -> ExitCode {
    let dir = match stats::runtime_dir(args.dir.as_deref()) {
        Ok(d) => d,
        Err(e) => return fail("stat", &e),
    };
    let mut previous = match read(&dir) {
        Ok(p) => p,
        Err(e) => return fail("stat", &e),
    };
    let mut at = Instant::now();
    loop {
        std::thread::sleep(args.every.unwrap_or(args.window));
        let now = match read(&dir) {
            Ok(p) => p,
            Err(e) => return fail("stat", &e),
        };
        let elapsed = at.elapsed();
        at = Instant::now();
        let rates = rates(&previous, &now, elapsed);
        // Groups are asked at each print (their lag is the log's, now).
        let groups = stats::bound_names(&dir).map(|n| stat_group::groups(&dir, &n)).unwrap_or_default();
        let mut text = if args.json { json(&now, &rates) } else { table(&dir, &previous, &now, &rates, elapsed) };
        if args.json {
            stat_group::stat_json(&mut text, &groups, &now, &rates);
        } else {
            stat_group::stat_table(&mut text, &groups, &now, &rates);
            text.push_str(LEGEND);
        }
        let mut out = io::stdout().lock();
        if args.every.is_some() && !args.json {
            // Like top: home the cursor and clear the screen first.
            let _ = write!(out, "\x1b[H\x1b[2J");
        }
        if out.write_all(text.as_bytes()).and_then(|()| out.flush()).is_err() {
            return ExitCode::SUCCESS; // stdout closed (a pipe's reader left)
        }
        if args.every.is_none() {
            return ExitCode::SUCCESS;
        }
        previous = now;
    }
}

pub fn ls(dir: Option<PathBuf>, json_out: bool) -> ExitCode {
    let dir = match stats::runtime_dir(dir.as_deref()) {
        Ok(d) => d,
        Err(e) => return fail("ls", &e),
    };
    let names = match stats::bound_names(&dir) {
        Ok(n) => n,
        Err(e) => return fail("ls", &e),
    };
    let procs = match read(&dir) {
        Ok(p) => p,
        Err(e) => return fail("ls", &e),
    };
    let groups = stat_group::groups(&dir, &names);
    // A group's control name (`<group>.group`) is listed under groups.
    let names: Vec<&String> = names.iter().filter(|n| stats::group_of_bound_name(n).is_none()).collect();
    let mut out = String::new();
    if json_out {
        for n in &names {
            let pid = stats::name_holder(&dir, n).map_or_else(|| "null".to_string(), |p| p.to_string());
            let _ = writeln!(
                out,
                "{{\"type\":\"name\",\"name\":{},\"live\":{},\"pid\":{pid}}}",
                stats::json_string(n),
                pid != "null"
            );
        }
        for p in &procs {
            for s in p.slots.iter().filter(|s| s.kind == SlotKind::Flow) {
                let _ = writeln!(
                    out,
                    "{{\"type\":\"flow\",\"name\":{},\"pid\":{},\"exe\":{},\"role\":{},\"peer_pid\":{}}}",
                    stats::json_string(&s.name),
                    p.pid,
                    stats::json_string(&p.exe),
                    stats::json_string(role(s)),
                    s.peer
                );
            }
        }
        stat_group::ls_json(&mut out, &groups, &procs);
    } else {
        let _ = writeln!(out, "runtime directory {}", dir.display());
        let _ = writeln!(out, "\nbound names ({}):", names.len());
        let _ = writeln!(out, "  {:<24} {:>8} {:<16}", "NAME", "PID", "PROCESS");
        for n in &names {
            // A name nobody holds is a crashed listener's leftover: the
            // next bind of the name replaces it.
            let (pid, exe) = match stats::name_holder(&dir, n) {
                Some(pid) => (pid.to_string(), process_name(pid)),
                None => ("-".to_string(), "(dead: leftover)".to_string()),
            };
            let _ = writeln!(out, "  {n:<24} {pid:>8} {exe:<16}");
        }
        let flows: Vec<_> = procs
            .iter()
            .flat_map(|p| p.slots.iter().filter(|s| s.kind == SlotKind::Flow).map(move |s| (p, s)))
            .collect();
        let _ = writeln!(out, "\nlive flows ({}):", flows.len());
        let _ = writeln!(out, "  {:<24} {:>8} {:<16} {:<9} {:>8}", "NAME", "PID", "PROCESS", "ROLE", "PEER");
        for (p, s) in flows {
            let _ = writeln!(out, "  {:<24} {:>8} {:<16} {:<9} {:>8}", s.name, p.pid, p.exe, role(s), s.peer);
        }
        stat_group::ls_table(&mut out, &groups, &procs);
    }
    let _ = io::stdout().lock().write_all(out.as_bytes());
    ExitCode::SUCCESS
}

/// The command name of process `pid` (its `comm`), or `?`.
fn process_name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).map_or_else(|_| "?".to_string(), |s| s.trim().to_string())
}

fn fail(cmd: &str, e: &dyn std::fmt::Display) -> ExitCode {
    let _ = writeln!(io::stderr(), "ringflow {cmd}: {e}");
    ExitCode::FAILURE
}

fn read(dir: &Path) -> Result<Vec<ProcessStats>, stats::ReadError> {
    stats::read_dir(dir)
}

fn key(p: &ProcessStats, s: &SlotSnapshot) -> Key {
    (p.pid, s.index, s.name.clone())
}

/// Per slot, per counter: the change per second between two reads.
fn rates(before: &[ProcessStats], after: &[ProcessStats], elapsed: Duration) -> HashMap<Key, Vec<f64>> {
    let old: HashMap<Key, &SlotSnapshot> =
        before.iter().flat_map(|p| p.slots.iter().map(move |s| (key(p, s), s))).collect();
    let secs = elapsed.as_secs_f64().max(1e-6);
    let mut out = HashMap::new();
    for p in after {
        for s in &p.slots {
            let k = key(p, s);
            let r = match old.get(&k) {
                Some(o) if o.opened_unix_ns == s.opened_unix_ns => {
                    s.counters.iter().zip(o.counters.iter()).map(|(n, o)| n.saturating_sub(*o) as f64 / secs).collect()
                }
                _ => Vec::new(),
            };
            out.insert(k, r);
        }
    }
    out
}

fn role(s: &SlotSnapshot) -> &'static str {
    match (s.kind, s.info) {
        (SlotKind::Flow, 1) => "allocator",
        (SlotKind::Flow, 2) => "acceptor",
        (SlotKind::Engine, _) => "engine",
        _ => "-",
    }
}

pub(crate) fn hist_json(h: &Histogram<u64>) -> String {
    format!(
        "{{\"n\":{},\"p50_ns\":{},\"p99_ns\":{},\"p999_ns\":{},\"max_ns\":{}}}",
        h.len(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    )
}

/// One JSON object per process, then one per slot.
fn json(procs: &[ProcessStats], rates: &HashMap<Key, Vec<f64>>) -> String {
    let mut out = String::new();
    for p in procs {
        let _ = writeln!(
            out,
            "{{\"type\":\"process\",\"pid\":{},\"exe\":{},\"clock\":{},\"slots\":{},\"skipped\":{},\"unpublished\":{}}}",
            p.pid,
            stats::json_string(&p.exe),
            stats::json_string(p.clock),
            p.slots.len(),
            p.skipped,
            p.unpublished
        );
        // A group member's slot is shown with its group (`stat_group`).
        for s in p.slots.iter().filter(|s| s.kind != SlotKind::Group) {
            // The kind's own word: a flow's peer pid, an engine thread's core.
            let peer = match s.kind {
                SlotKind::Flow => format!("\"peer_pid\":{}", s.peer),
                SlotKind::Engine if s.peer == u64::MAX => "\"core\":null".to_owned(),
                SlotKind::Engine => format!("\"core\":{}", s.peer),
                SlotKind::Group => format!("\"member_id\":{}", s.info),
                SlotKind::Cluster => format!("\"node\":{}", s.info),
                SlotKind::ClusterPeer => format!("\"node\":{},\"peer\":{}", s.peer, s.info),
                SlotKind::GroupRemote => format!("\"member_id\":{},\"host\":{}", s.info, s.peer),
                SlotKind::GroupGateway => format!("\"host\":{}", s.info),
            };
            let mut line = format!(
                "{{\"type\":{},\"pid\":{},\"name\":{},\"role\":{},{peer}",
                stats::json_string(s.kind.as_str()),
                p.pid,
                stats::json_string(&s.name),
                stats::json_string(role(s)),
            );
            let r = rates.get(&key(p, s));
            for (i, name) in s.kind.counter_names().iter().enumerate() {
                let _ = write!(line, ",\"{name}\":{}", s.counters[i]);
                if let Some(rate) = r.and_then(|r| r.get(i)) {
                    let _ = write!(line, ",\"{name}_per_sec\":{rate:.1}");
                }
            }
            for (i, name) in s.kind.hist_names().iter().enumerate() {
                let _ = write!(line, ",\"{name}\":{}", hist_json(&s.hists[i]));
            }
            line.push('}');
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

pub(crate) fn ns(v: u64) -> String {
    match v {
        0 => "-".into(),
        v if v < 10_000 => format!("{v}ns"),
        v if v < 10_000_000 => format!("{:.1}us", v as f64 / 1e3),
        v if v < 10_000_000_000 => format!("{:.1}ms", v as f64 / 1e6),
        v => format!("{:.1}s", v as f64 / 1e9),
    }
}

pub(crate) fn rate(r: Option<f64>) -> String {
    match r {
        None => "-".into(),
        Some(r) if r >= 1e6 => format!("{:.2}M/s", r / 1e6),
        Some(r) if r >= 1e3 => format!("{:.1}k/s", r / 1e3),
        Some(r) => format!("{r:.0}/s"),
    }
}

fn table(
    dir: &Path,
    before: &[ProcessStats],
    procs: &[ProcessStats],
    rates: &HashMap<Key, Vec<f64>>,
    elapsed: Duration,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ringflow stat: {} process(es) in {} (rates and LAST over {:.1} s)",
        procs.len(),
        dir.display(),
        elapsed.as_secs_f64()
    );
    let old: HashMap<Key, &SlotSnapshot> =
        before.iter().flat_map(|p| p.slots.iter().map(move |s| (key(p, s), s))).collect();
    for p in procs {
        let _ = writeln!(
            out,
            "\npid {} {} (clock {}{}{})",
            p.pid,
            p.exe,
            p.clock,
            if p.skipped > 0 { format!(", {} slot(s) skipped: changing or garbage", p.skipped) } else { String::new() },
            if p.unpublished > 0 { format!(", {} flow(s) not published", p.unpublished) } else { String::new() }
        );
        // 100 columns: name, role and peer, counts and rates, then the
        // latency of the last interval beside the totals.
        let _ = writeln!(
            out,
            "  {:<6} {:<15} {:<5} {:>7} {:>7} {:>7} {:>8} {:>8} {:>6} {:>6} {:>6} {:>6}",
            "KIND", "NAME", "ROLE", "PEER", "SENT", "RECV", "SENT/s", "RECV/s", "LAST50", "LAST99", "P50", "P99"
        );
        for s in p.slots.iter().filter(|s| s.kind != SlotKind::Group && !stat_cluster::is_cluster(s.kind)) {
            let r = rates.get(&key(p, s));
            let h = &s.hists[0];
            // The interval's own histogram: now less the last read (the same
            // slot owner only; `None` for a slot opened since).
            let last = old.get(&key(p, s)).filter(|o| o.opened_unix_ns == s.opened_unix_ns).and_then(|o| {
                let mut d = h.clone();
                d.subtract(&o.hists[0]).ok().map(|()| d)
            });
            let quantile =
                |h: Option<&Histogram<u64>>, q: f64| h.filter(|h| !h.is_empty()).map_or(0, |h| h.value_at_quantile(q));
            let peer = match s.kind {
                SlotKind::Flow if s.peer != 0 => s.peer.to_string(),
                SlotKind::Engine if s.peer != u64::MAX => format!("core{}", s.peer),
                _ => "-".to_string(),
            };
            let _ = writeln!(
                out,
                "  {:<6} {:<15} {:<5} {:>7} {:>7} {:>7} {:>8} {:>8} {:>6} {:>6} {:>6} {:>6}",
                s.kind.as_str(),
                cut(&s.name, 15),
                short_role(s),
                peer,
                count(s.counters[0]),
                count(s.counters[1]),
                rate(r.and_then(|r| r.first().copied())),
                rate(r.and_then(|r| r.get(1).copied())),
                ns_short(quantile(last.as_ref(), 0.5)),
                ns_short(quantile(last.as_ref(), 0.99)),
                ns_short(quantile(Some(h), 0.5)),
                ns_short(quantile(Some(h), 0.99)),
            );
        }
        stat_cluster::text(p, &mut out);
    }
    out
}

/// `name` cut to `width` characters (the last one a `~` when cut).
fn cut(name: &str, width: usize) -> String {
    if name.chars().count() <= width {
        return name.to_string();
    }
    let mut s: String = name.chars().take(width - 1).collect();
    s.push('~');
    s
}

fn short_role(s: &SlotSnapshot) -> &'static str {
    match role(s) {
        "allocator" => "alloc",
        "acceptor" => "accpt",
        "engine" => "eng",
        _ => "-",
    }
}

/// A count in at most 7 characters.
fn count(n: u64) -> String {
    match n {
        n if n < 10_000_000 => n.to_string(),
        n if n < 10_000_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n => format!("{:.1}G", n as f64 / 1e9),
    }
}

/// A duration in nanoseconds in at most 6 characters.
fn ns_short(v: u64) -> String {
    match v {
        0 => "-".into(),
        v if v < 10_000 => format!("{v}n"),
        v if v < 1_000_000 => format!("{}u", v / 1_000),
        v if v < 1_000_000_000 => format!("{}m", v / 1_000_000),
        v => format!("{:.0}s", v as f64 / 1e9),
    }
}

/// The last lines of the table.
const LEGEND: &str = "
flows: PEER pid, SENT/RECV messages, P50/P99 one-way latency of received messages since the flow
       opened, LAST50/LAST99 over the last interval (n ns, u us, m ms)
engines: SENT = duty cycles, RECV = busy cycles, latency = duty-cycle time
groups: LAG bytes of log a member has not handed back, P50..MAX one-way latency of received messages
";
