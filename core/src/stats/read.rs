//! The reading side (`ringflow stat`): maps every stats file of a runtime
//! directory read-only and copies each live slot out under its seqlock.
//! Everything in the files is untrusted: a file whose header does not
//! match this layout is skipped, a slot that keeps changing or holds an
//! unknown kind is skipped, and the files of processes that are gone are
//! removed.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicU64, Ordering};

use hdrhistogram::Histogram;
use memmap2::{MmapOptions, MmapRaw};

use super::hist;
use super::segment::{process_start, HEADER_BYTES, MAGIC, MAX_SLOTS, VERSION};
use super::segment::{H_CLOCK, H_COUNTS_LEN, H_CREATED, H_EXE, H_HISTS, H_MAGIC, H_NS_PER_TICK, H_PID};
use super::segment::{H_SLOTS, H_SLOT_BYTES, H_START, H_UNPUBLISHED, H_VERSION};
use super::{SlotKind, COUNTERS, HISTS, NAME_LEN, SLOT_BYTES, SLOT_HEAD_WORDS};
use super::{W_COUNTERS, W_INFO, W_KIND, W_NAME, W_OPENED, W_PEER, W_SEQ};

/// Copies of a slot tried before it is skipped as torn.
const ATTEMPTS: usize = 4;

/// What one process publishes.
#[derive(Debug)]
pub struct ProcessStats {
    /// The process id.
    pub pid: u32,
    /// The executable's file name.
    pub exe: String,
    /// The clock of its stamps (`tsc` or `monotonic-raw`).
    pub clock: &'static str,
    /// When the process made its stats file (Unix time, ns).
    pub created_unix_ns: u64,
    /// Flows beyond what its file holds (counted, not shown).
    pub unpublished: u64,
    /// Its flows, engine threads and group members.
    pub slots: Vec<SlotSnapshot>,
    /// Slots skipped: torn (changing under every copy) or garbage.
    pub skipped: usize,
}

/// A copy of one slot.
#[derive(Debug)]
pub struct SlotSnapshot {
    /// The slot's index in the file.
    pub index: usize,
    /// What the slot describes.
    pub kind: SlotKind,
    /// The flow's, thread's or group's name.
    pub name: String,
    /// The kind's info word (a flow: its role and whether it is bridged).
    pub info: u64,
    /// The peer's pid, if known (0 otherwise).
    pub peer: u64,
    /// When the slot was taken (Unix time, ns).
    pub opened_unix_ns: u64,
    /// The kind's counters, in its order (`SlotKind::counter_names`).
    pub counters: [u64; COUNTERS],
    /// Every histogram of the slot, in the kind's order.
    pub hists: Vec<Histogram<u64>>,
}

impl SlotSnapshot {
    /// Counter by name (see `SlotKind::counter_names`).
    pub fn counter(&self, name: &str) -> Option<u64> {
        let i = self.kind.counter_names().iter().position(|n| *n == name)?;
        Some(self.counters[i])
    }
}

/// Reading a runtime directory's stats failed as a whole.
#[derive(Debug)]
pub struct ReadError {
    /// The directory read.
    pub path: PathBuf,
    /// Why it could not be read.
    pub source: std::io::Error,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot read {}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for ReadError {}

/// Every live process's statistics in runtime directory `dir`, by pid.
/// Files that are not stats files are ignored; a file whose process is
/// gone is removed; a garbage file is skipped (and kept: it may be another
/// version's).
pub fn read_dir(dir: &Path) -> Result<Vec<ProcessStats>, ReadError> {
    let stats_dir = dir.join("stats");
    let entries = match fs::read_dir(&stats_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(ReadError { path: stats_dir, source }),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let path = entry.path();
        if !alive(pid) {
            let _ = fs::remove_file(&path);
            continue;
        }
        if let Some(p) = read_file(&path, pid) {
            out.push(p);
        }
    }
    out.sort_by_key(|p| p.pid);
    Ok(out)
}

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks the process exists; no signal is sent.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A mapped file's words, bounds-checked.
struct Words {
    map: MmapRaw,
    len: usize,
}

impl Words {
    fn get(&self, i: usize) -> u64 {
        if i >= self.len {
            return 0;
        }
        // SAFETY: `i` is below the mapped length in words; the map is
        // page-aligned, so every word is aligned; atomics may read memory
        // another process writes.
        let w = unsafe { &*(self.map.as_ptr() as *const AtomicU64).add(i) };
        // SYNC: Relaxed; ordered by the seqlock fences in `copy_slot`.
        w.load(Ordering::Relaxed)
    }

    fn get_acquire(&self, i: usize) -> u64 {
        if i >= self.len {
            return 0;
        }
        // SAFETY: as in `get`.
        let w = unsafe { &*(self.map.as_ptr() as *const AtomicU64).add(i) };
        // SYNC: Acquire; pairs with the writer's Release stores of the
        // magic, the slot count and the even sequence value.
        w.load(Ordering::Acquire)
    }
}

fn read_file(path: &Path, pid: u32) -> Option<ProcessStats> {
    let file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len() as usize;
    if len < HEADER_BYTES {
        return None;
    }
    let map = MmapOptions::new().len(len).map_raw_read_only(&file).ok()?;
    let w = Words { map, len: len / 8 };
    let valid = w.get_acquire(H_MAGIC) == MAGIC
        && w.get(H_VERSION) == VERSION
        && w.get(H_PID) == u64::from(pid)
        && w.get(H_SLOT_BYTES) == SLOT_BYTES as u64
        && w.get(H_COUNTS_LEN) == hist::COUNTS_LEN as u64
        && w.get(H_HISTS) == HISTS as u64;
    // A live process with this pid that is not the one that wrote the file
    // (the pid was reused): the file is stale.
    let start = w.get(H_START);
    if !valid || (start != 0 && process_start(pid).is_some_and(|s| s != start)) {
        return None;
    }
    let slots = (w.get_acquire(H_SLOTS) as usize).min(MAX_SLOTS).min((len - HEADER_BYTES) / SLOT_BYTES);
    let mut p = ProcessStats {
        pid,
        exe: words_to_name(&w, H_EXE),
        clock: if w.get(H_CLOCK) == 1 { "tsc" } else { "monotonic-raw" },
        created_unix_ns: w.get(H_CREATED),
        unpublished: w.get(H_UNPUBLISHED),
        slots: Vec::new(),
        skipped: 0,
    };
    let _ = w.get(H_NS_PER_TICK);
    for index in 0..slots {
        match copy_slot(&w, index) {
            Taken::Free => {}
            Taken::Slot(s) => p.slots.push(*s),
            Taken::Skipped => p.skipped += 1,
        }
    }
    Some(p)
}

enum Taken {
    Free,
    Slot(Box<SlotSnapshot>),
    Skipped,
}

/// Copies slot `index` under its seqlock, retrying a few times if a change
/// raced the copy.
fn copy_slot(w: &Words, index: usize) -> Taken {
    let base = (HEADER_BYTES + index * SLOT_BYTES) / 8;
    for _ in 0..ATTEMPTS {
        let s1 = w.get_acquire(base + W_SEQ);
        if s1 & 1 == 1 {
            std::thread::yield_now();
            continue;
        }
        let kind_word = w.get(base + W_KIND);
        if kind_word == 0 {
            return Taken::Free;
        }
        let mut counters = [0u64; COUNTERS];
        for (i, c) in counters.iter_mut().enumerate() {
            *c = w.get(base + W_COUNTERS + i);
        }
        let hists: Vec<Vec<u64>> = (0..HISTS)
            .map(|h| {
                let start = base + SLOT_HEAD_WORDS + h * hist::COUNTS_LEN;
                (0..hist::COUNTS_LEN).map(|i| w.get(start + i)).collect()
            })
            .collect();
        let (info, peer, opened) = (w.get(base + W_INFO), w.get(base + W_PEER), w.get(base + W_OPENED));
        let name = words_to_name(w, base + W_NAME);
        // SYNC: Acquire fence; pairs with the writer's Release fence after
        // its odd store: if any load above saw a write of a change, the
        // second read below sees the odd value (or a later one).
        fence(Ordering::Acquire);
        if w.get(base + W_SEQ) != s1 {
            continue;
        }
        let Some(kind) = SlotKind::from_word(kind_word) else { return Taken::Skipped };
        let hists = hists.iter().map(|c| to_histogram(c)).collect();
        return Taken::Slot(Box::new(SlotSnapshot {
            index,
            kind,
            name,
            info,
            peer,
            opened_unix_ns: opened,
            counters,
            hists,
        }));
    }
    Taken::Skipped
}

fn to_histogram(counts: &[u64]) -> Histogram<u64> {
    let mut h = hist::empty();
    for (i, &n) in counts.iter().enumerate() {
        if n > 0 {
            let _ = h.record_n(hist::value_at(i), n);
        }
    }
    h
}

fn words_to_name(w: &Words, at: usize) -> String {
    let mut bytes = Vec::with_capacity(NAME_LEN);
    for i in 0..NAME_LEN / 8 {
        bytes.extend_from_slice(&w.get(at + i).to_le_bytes());
    }
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}
