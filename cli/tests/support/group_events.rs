//! What member children of a group across hosts write, one line per
//! event, and how tests read it back: a member process writes every
//! event it delivers to `events-NAME` in the test's directory.

use std::path::Path;

use ringflow::Event;

/// One event as a line: views list members and changes as host/id.
pub fn line(e: &Event<'_>) -> String {
    match e {
        Event::Message(m) => {
            let s = m.sender();
            format!("msg {}/{} #{} {}", s.host, s.id, m.seq(), String::from_utf8_lossy(m.payload().unwrap_or(b"?")))
        }
        Event::View(v) => {
            let ms: Vec<String> = v.members.iter().map(|m| format!("{}/{}", m.host, m.id)).collect();
            let cs: Vec<String> =
                v.changes.iter().map(|c| format!("{:?} {}/{}", c.kind, c.member.host, c.member.id)).collect();
            format!("view {} [{}] ({})", v.id, ms.join(" "), cs.join(", "))
        }
        Event::Lost { count } => format!("lost {count}"),
    }
}

/// The events member `name` wrote so far.
pub fn events(dir: &Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(format!("events-{name}"))).unwrap_or_default().lines().map(str::to_owned).collect()
}

/// Whether `l` is a view line of `n` members.
pub fn is_view_of(l: &str, n: usize) -> bool {
    l.starts_with("view ")
        && l.split('[').nth(1).and_then(|m| m.split(']').next()).is_some_and(|m| m.split_whitespace().count() == n)
}

/// `events` from the first view of three members on.
pub fn from_three(events: &[String]) -> Vec<String> {
    let at = events.iter().position(|l| is_view_of(l, 3)).unwrap_or(events.len());
    events[at..].to_vec()
}

/// The payloads of `sender`'s messages in `events` (payloads are
/// `sender-k`), in delivery order.
pub fn texts_of(events: &[String], sender: &str) -> Vec<String> {
    events
        .iter()
        .filter(|l| l.starts_with("msg "))
        .filter_map(|l| l.rsplit(' ').next())
        .filter(|t| t.starts_with(&format!("{sender}-")))
        .map(str::to_owned)
        .collect()
}

/// `events` cut at its views: each view line with the payloads delivered
/// after it (sorted: a FIFO group orders each sender, not the senders),
/// up to the next view. Virtual synchrony: every member delivers the same
/// views, and the same messages between the same two views.
pub fn by_view(events: &[String]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for l in events {
        if l.starts_with("view ") {
            out.push((l.clone(), Vec::new()));
        } else if let (Some(last), Some(text)) = (out.last_mut(), l.strip_prefix("msg ")) {
            last.1.push(text.rsplit(' ').next().unwrap_or("").to_owned());
        }
    }
    for (_, msgs) in &mut out {
        msgs.sort();
    }
    out
}
