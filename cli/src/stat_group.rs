//! Groups in `ringflow ls` and `ringflow stat`: each group bound in the
//! runtime directory (`<name>.group.sock`) is inspected through its keeper
//! (membership, states, lag behind the log's tail, the slowest member);
//! each member's live counters and latency histogram come from its
//! process's stats file (a slot of kind `group`). A group whose keeper
//! does not answer is shown with the reason, and with the members the
//! stats files name.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use ringflow::stats::{self, GroupSnapshot, InspectError, MemberSnapshot, ProcessStats, SlotKind, SlotSnapshot};
use ringflow::SlowMember;

use crate::stat::Key;

/// How long `ls` and `stat` wait for one group's keeper.
const KEEPER_ANSWER: Duration = Duration::from_secs(2);

/// A group bound in the runtime directory, inspected (or why not).
pub struct Group {
    pub name: String,
    pub snapshot: Result<GroupSnapshot, InspectError>,
}

/// Every group bound in `dir`, by name, among its bound names.
pub fn groups(dir: &Path, bound: &[String]) -> Vec<Group> {
    bound
        .iter()
        .filter_map(|n| stats::group_of_bound_name(n))
        .map(|name| Group { name: name.to_owned(), snapshot: stats::inspect_group(dir, name, KEEPER_ANSWER) })
        .collect()
}

/// A member as shown: from the group's memory, its process's slot, or both.
struct Row<'a> {
    member_id: u64,
    pid: u32,
    seat: Option<usize>,
    table: Option<&'a MemberSnapshot>,
    slot: Option<(&'a ProcessStats, &'a SlotSnapshot)>,
}

impl Row<'_> {
    /// Counter `i` (`GroupCounter`: sent, received, lost): live from the
    /// process's slot, else as the member last wrote it into the table.
    fn counter(&self, i: usize) -> u64 {
        match (self.slot, self.table) {
            (Some((_, s)), _) => s.counters[i],
            (None, Some(t)) => [t.counters.sent, t.counters.received, t.counters.lost][i.min(2)],
            (None, None) => 0,
        }
    }

    fn exe(&self, procs: &[ProcessStats]) -> String {
        procs.iter().find(|p| p.pid == self.pid).map_or_else(String::new, |p| p.exe.clone())
    }
}

/// The group's member slots in the stats files.
fn slots<'a>(procs: &'a [ProcessStats], group: &'a str) -> impl Iterator<Item = (&'a ProcessStats, &'a SlotSnapshot)> {
    procs.iter().flat_map(move |p| {
        p.slots.iter().filter(move |s| s.kind == SlotKind::Group && s.name == group).map(move |s| (p, s))
    })
}

/// The members of `g`: the table's, each with its slot if its process
/// publishes one; without a snapshot, the slots alone.
fn rows<'a>(g: &'a Group, procs: &'a [ProcessStats]) -> Vec<Row<'a>> {
    match &g.snapshot {
        Ok(snap) => snap
            .members
            .iter()
            .map(|m| Row {
                member_id: m.member.id,
                pid: m.member.pid,
                seat: Some(m.seat),
                table: Some(m),
                slot: slots(procs, &g.name).find(|(p, s)| p.pid == m.member.pid && s.info == m.member.id),
            })
            .collect(),
        Err(_) => {
            let mut rows: Vec<Row<'a>> = slots(procs, &g.name)
                .map(|(p, s)| Row {
                    member_id: s.info,
                    pid: p.pid,
                    seat: Some(s.peer as usize),
                    table: None,
                    slot: Some((p, s)),
                })
                .collect();
            rows.sort_by_key(|r| r.member_id);
            rows
        }
    }
}

fn slow_json(s: SlowMember) -> String {
    match s {
        SlowMember::Block => "\"block\"".into(),
        SlowMember::Lap => "\"lap\"".into(),
        SlowMember::Evict { after } => format!("\"evict\",\"evict_after_ms\":{}", after.as_millis()),
    }
}

fn slow_str(s: SlowMember) -> String {
    match s {
        SlowMember::Block => "block".into(),
        SlowMember::Lap => "lap".into(),
        SlowMember::Evict { after } => format!("evict after {after:?}"),
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "null".to_owned(), |v| v.to_string())
}

/// The group's own line.
fn group_json(g: &Group) -> String {
    match &g.snapshot {
        Ok(s) => {
            let slowest = s.slowest().map_or_else(
                || "null".to_owned(),
                |m| {
                    format!(
                        "{{\"member_id\":{},\"pid\":{},\"lag_bytes\":{}}}",
                        m.member.id,
                        m.member.pid,
                        opt(m.lag_bytes)
                    )
                },
            );
            format!(
                "{{\"type\":\"group\",\"name\":{},\"keeper_pid\":{},\"view\":{},\"guarantee\":\"{}\",\"slow_member\":{},\
                 \"capacity\":{},\"max_message\":{},\"max_members\":{},\"tail\":{},\"members\":{},\"slowest\":{slowest}}}",
                stats::json_string(&g.name),
                s.keeper_pid,
                s.view_id,
                s.guarantee.name(),
                slow_json(s.slow),
                s.capacity,
                s.max_message,
                s.max_members,
                s.tail,
                s.members.len(),
            )
        }
        Err(e) => format!(
            "{{\"type\":\"group\",\"name\":{},\"error\":{}}}",
            stats::json_string(&g.name),
            stats::json_string(&e.to_string())
        ),
    }
}

/// The start of a member's line: who and where.
fn member_head(g: &Group, r: &Row<'_>, procs: &[ProcessStats]) -> String {
    format!(
        "{{\"type\":\"member\",\"group\":{},\"member_id\":{},\"pid\":{},\"exe\":{},\"seat\":{},\"state\":{}",
        stats::json_string(&g.name),
        r.member_id,
        r.pid,
        stats::json_string(&r.exe(procs)),
        opt(r.seat.map(|s| s as u64)),
        r.table.map_or_else(|| "null".to_owned(), |t| stats::json_string(t.state.as_str())),
    )
}

/// `ls --json`: a line per group, then one per member.
pub fn ls_json(out: &mut String, groups: &[Group], procs: &[ProcessStats]) {
    for g in groups {
        let _ = writeln!(out, "{}", group_json(g));
        for r in rows(g, procs) {
            let _ = writeln!(out, "{}}}", member_head(g, &r, procs));
        }
    }
}

/// `ls`: the groups and their members.
pub fn ls_table(out: &mut String, groups: &[Group], procs: &[ProcessStats]) {
    let _ = writeln!(out, "\ngroups ({}):", groups.len());
    for g in groups {
        match &g.snapshot {
            Ok(s) => {
                let _ = writeln!(
                    out,
                    "  {} (keeper pid {}, view {}, {}, {}, {} member(s))",
                    g.name,
                    s.keeper_pid,
                    s.view_id,
                    s.guarantee.name(),
                    slow_str(s.slow),
                    s.members.len()
                );
            }
            Err(e) => {
                let _ = writeln!(out, "  {} ({e})", g.name);
            }
        }
        for r in rows(g, procs) {
            let state = r.table.map_or("?", |t| t.state.as_str());
            let _ = writeln!(out, "    member {:<6} pid {:>8} {:<16} {state}", r.member_id, r.pid, r.exe(procs));
        }
    }
}

/// `stat --json`: a line per group (with its slowest member), then one per
/// member with its counters, lag and latency.
pub fn stat_json(out: &mut String, groups: &[Group], procs: &[ProcessStats], rates: &HashMap<Key, Vec<f64>>) {
    for g in groups {
        let _ = writeln!(out, "{}", group_json(g));
        let slowest = g.snapshot.as_ref().ok().and_then(|s| s.slowest()).map(|m| m.member.id);
        for r in rows(g, procs) {
            let mut line = member_head(g, &r, procs);
            let _ = write!(
                line,
                ",\"lag_bytes\":{},\"slowest\":{},\"published\":{}",
                opt(r.table.and_then(|t| t.lag_bytes)),
                slowest == Some(r.member_id),
                r.slot.is_some()
            );
            let rate = r.slot.and_then(|(p, s)| rates.get(&(p.pid, s.index, s.name.clone())));
            for (i, name) in SlotKind::Group.counter_names().iter().enumerate() {
                let _ = write!(line, ",\"{name}\":{}", r.counter(i));
                if let Some(v) = rate.and_then(|r| r.get(i)) {
                    let _ = write!(line, ",\"{name}_per_sec\":{v:.1}");
                }
            }
            match r.slot {
                Some((_, s)) => {
                    let _ = write!(line, ",\"latency\":{}", crate::stat::hist_json(&s.hists[0]));
                }
                None => line.push_str(",\"latency\":null"),
            }
            line.push('}');
            let _ = writeln!(out, "{line}");
        }
    }
}

/// `stat`: a block per group, a row per member.
pub fn stat_table(out: &mut String, groups: &[Group], procs: &[ProcessStats], rates: &HashMap<Key, Vec<f64>>) {
    use crate::stat::{ns, rate};
    for g in groups {
        match &g.snapshot {
            Ok(s) => {
                let slowest = match s.slowest() {
                    Some(m) => format!(
                        "slowest: member {} (pid {}), {} B behind",
                        m.member.id,
                        m.member.pid,
                        m.lag_bytes.unwrap_or(0)
                    ),
                    None => "nobody behind".to_owned(),
                };
                let _ = writeln!(
                    out,
                    "\ngroup {}: keeper pid {}, view {}, {}, {}, log {} B; {slowest}",
                    g.name,
                    s.keeper_pid,
                    s.view_id,
                    s.guarantee.name(),
                    slow_str(s.slow),
                    s.capacity
                );
            }
            Err(e) => {
                let _ = writeln!(out, "\ngroup {}: {e}", g.name);
            }
        }
        let _ = writeln!(
            out,
            "  {:<7} {:>8} {:<9} {:>10} {:>10} {:>8} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8}",
            "MEMBER",
            "PID",
            "STATE",
            "SENT",
            "RECEIVED",
            "LOST",
            "LAG",
            "SEND RATE",
            "RECV RATE",
            "P50",
            "P99",
            "P99.9",
            "MAX"
        );
        for r in rows(g, procs) {
            let rt = r.slot.and_then(|(p, s)| rates.get(&(p.pid, s.index, s.name.clone())));
            let h = r.slot.map(|(_, s)| &s.hists[0]);
            let q = |f: &dyn Fn(&stats::Histogram<u64>) -> u64| h.map_or_else(|| "-".to_owned(), |h| ns(f(h)));
            let _ = writeln!(
                out,
                "  {:<7} {:>8} {:<9} {:>10} {:>10} {:>8} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8}",
                r.member_id,
                r.pid,
                r.table.map_or("?", |t| t.state.as_str()),
                r.counter(0),
                r.counter(1),
                r.counter(2),
                r.table.and_then(|t| t.lag_bytes).map_or_else(|| "-".to_owned(), |l| format!("{l} B")),
                rate(rt.and_then(|r| r.first().copied())),
                rate(rt.and_then(|r| r.get(1).copied())),
                q(&|h| h.value_at_quantile(0.5)),
                q(&|h| h.value_at_quantile(0.99)),
                q(&|h| h.value_at_quantile(0.999)),
                q(&|h| h.max()),
            );
        }
        // A group that crosses hosts: its members elsewhere, as this
        // host's engine (the group's gateway) publishes them.
        for p in procs {
            for m in crate::stat_cluster::remote_members(p, &g.name) {
                let _ = writeln!(out, "  remote: {m}");
            }
        }
    }
}
