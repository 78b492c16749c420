//! The writing side: this process's stats files (one per runtime
//! directory, kept mapped until the process ends) and the slots handed to
//! flows and engine threads. A slot's owner is its only writer.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::Mutex;

use memmap2::{MmapOptions, MmapRaw};

use super::hist::{self, Counts};
use super::{SlotKind, COUNTERS, HISTS, NAME_LEN, SLOT_BYTES, SLOT_HEAD_WORDS, SLOT_WORDS};
use super::{W_COUNTERS, W_INFO, W_KIND, W_NAME, W_OPENED, W_PEER, W_SEQ};

/// "RFSTATS1", little-endian.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"RFSTATS1");
pub(crate) const VERSION: u64 = 1;
/// Bytes of the file header (one page).
pub(crate) const HEADER_BYTES: usize = 4096;
/// Slots added at a time.
const CHUNK_SLOTS: usize = 8;
/// Slots a file may hold; more flows get heap slots (counted in the header).
pub(crate) const MAX_SLOTS: usize = 4096;

// Header words.
pub(crate) const H_MAGIC: usize = 0;
pub(crate) const H_VERSION: usize = 1;
pub(crate) const H_PID: usize = 2;
pub(crate) const H_START: usize = 3;
pub(crate) const H_SLOTS: usize = 4;
pub(crate) const H_SLOT_BYTES: usize = 5;
pub(crate) const H_COUNTS_LEN: usize = 6;
pub(crate) const H_HISTS: usize = 7;
pub(crate) const H_CLOCK: usize = 8;
pub(crate) const H_NS_PER_TICK: usize = 9;
pub(crate) const H_CREATED: usize = 10;
pub(crate) const H_UNPUBLISHED: usize = 11;
pub(crate) const H_EXE: usize = 12;

/// One process's stats file in one runtime directory. Never unmapped: the
/// slots handed out point into it for the life of the process.
struct StatsFile {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    header: MmapRaw,
    inner: Mutex<Chunks>,
}

struct Chunks {
    maps: Vec<MmapRaw>,
    free: Vec<usize>,
    slots: usize,
    /// By slot index: used before (its words may be non-zero). A slot of a
    /// new chunk is zero and is handed out without a write to its
    /// histograms, so their pages stay untouched until something is
    /// recorded (a slot's histograms are about 650 KiB of address space).
    used: Vec<bool>,
}

static FILES: Mutex<Vec<&'static StatsFile>> = Mutex::new(Vec::new());

/// A slot of counters and histograms, in this process's stats file (or on
/// the heap when there is none). Dropping it frees the slot.
pub struct Slot {
    words: NonNull<AtomicU64>,
    home: Home,
}

enum Home {
    File {
        file: &'static StatsFile,
        index: usize,
    },
    /// Anonymous memory: zero pages, touched only where written.
    Anon(#[allow(dead_code)] memmap2::MmapMut),
    Heap(#[allow(dead_code)] Box<[AtomicU64]>),
}

// SAFETY: `words` points at SLOT_WORDS atomics that `home` keeps alive (a
// file mapping never unmapped, or the owned anonymous map or heap block);
// atomics may be shared between threads.
unsafe impl Send for Slot {}
// SAFETY: as for Send; every access goes through atomics.
unsafe impl Sync for Slot {}

impl Slot {
    /// A slot of `kind` named `name` in the stats file of `dir`. `info` and
    /// `peer` are the kind's own words (role, peer pid).
    pub fn open(dir: &Path, kind: SlotKind, name: &str, info: u64, peer: u64) -> Slot {
        let (slot, used) =
            match file_for(dir).and_then(|f| f.take().map(|(index, words, used)| (f, index, words, used))) {
                Some((file, index, words, used)) => (Slot { words, home: Home::File { file, index } }, used),
                None => (Slot::on_heap(), false),
            };
        slot.claim(kind, name, info, peer, used);
        slot
    }

    /// A slot only this process sees.
    pub fn on_heap() -> Slot {
        if let Ok(mut map) = MmapOptions::new().len(SLOT_BYTES).map_anon() {
            // Zero pages, untouched until written (page-aligned, so aligned
            // for atomics; a zero word is a zero atomic).
            if let Some(words) = NonNull::new(map.as_mut_ptr().cast::<AtomicU64>()) {
                return Slot { words, home: Home::Anon(map) };
            }
        }
        let block: Box<[AtomicU64]> = (0..SLOT_WORDS).map(|_| AtomicU64::new(0)).collect();
        let words = NonNull::from(&block[0]);
        Slot { words, home: Home::Heap(block) }
    }

    /// Whether `ringflow stat` can see this slot.
    pub fn is_published(&self) -> bool {
        matches!(self.home, Home::File { .. })
    }

    #[inline(always)]
    fn word(&self, i: usize) -> &AtomicU64 {
        debug_assert!(i < SLOT_WORDS);
        // SAFETY: `words` points at SLOT_WORDS live atomics (see the Send
        // impl) and every caller's index is a layout constant below that.
        unsafe { &*self.words.as_ptr().add(i) }
    }

    /// Counter `i` (a `FlowCounter` or `EngineCounter` as usize).
    #[inline(always)]
    pub fn counter(&self, i: usize) -> &AtomicU64 {
        self.word(W_COUNTERS + i.min(COUNTERS - 1))
    }

    /// Adds `n` to counter `i` (the owner only: load and store, no RMW).
    #[inline(always)]
    pub fn add(&self, i: usize, n: u64) {
        let c = self.counter(i);
        // SYNC: Relaxed; single writer; readers see each word whole.
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// Sets counter `i` (the owner only).
    #[inline(always)]
    pub fn set(&self, i: usize, v: u64) {
        // SYNC: Relaxed; as in `add`.
        self.counter(i).store(v, Ordering::Relaxed);
    }

    /// Counter `i`.
    #[inline(always)]
    pub fn get(&self, i: usize) -> u64 {
        // SYNC: Relaxed; as in `add`.
        self.counter(i).load(Ordering::Relaxed)
    }

    /// Histogram `h` of the slot.
    #[inline(always)]
    pub fn hist(&self, h: usize) -> Counts<'_> {
        let start = SLOT_HEAD_WORDS + h.min(HISTS - 1) * hist::COUNTS_LEN;
        // SAFETY: the histograms lie inside the slot's SLOT_WORDS words (a
        // const assertion of the layout); alive as in `word`.
        let words = unsafe { std::slice::from_raw_parts(self.words.as_ptr().add(start), hist::COUNTS_LEN) };
        Counts::of_layout(words)
    }

    /// Zeroes the histograms, telling readers through the sequence word
    /// (the owner only).
    pub fn reset_hists(&self) {
        self.change(|| (0..HISTS).for_each(|h| self.hist(h).clear()));
    }

    /// Runs `f` inside a seqlock write section of the slot.
    fn change(&self, f: impl FnOnce()) {
        let seq = self.word(W_SEQ);
        // SYNC: Relaxed load (our own word); the odd value is published by
        // the Release fence below before any of `f`'s stores, pairing with
        // the reader's Acquire fence before its second sequence read.
        let s = seq.load(Ordering::Relaxed) | 1;
        seq.store(s, Ordering::Relaxed);
        fence(Ordering::Release);
        f();
        // SYNC: Release; pairs with the reader's Acquire first read: a
        // reader that sees the even value sees every store of `f`.
        seq.store(s + 1, Ordering::Release);
    }

    /// Names the slot and, if it was `used` before, zeroes what its last
    /// owner left (a fresh slot is zero: its histograms stay untouched).
    fn claim(&self, kind: SlotKind, name: &str, info: u64, peer: u64, used: bool) {
        self.change(|| {
            for i in 0..COUNTERS {
                self.set(i, 0);
            }
            if used {
                (0..HISTS).for_each(|h| self.hist(h).clear());
            }
            // SYNC: Relaxed, inside the write section (see `change`).
            self.word(W_INFO).store(info, Ordering::Relaxed);
            self.word(W_PEER).store(peer, Ordering::Relaxed);
            self.word(W_OPENED).store(unix_ns(), Ordering::Relaxed);
            for (i, w) in name_words(name).into_iter().enumerate() {
                self.word(W_NAME + i).store(w, Ordering::Relaxed);
            }
            self.word(W_KIND).store(kind as u64, Ordering::Relaxed);
        });
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Home::File { file, index } = self.home {
            // SYNC: Relaxed, inside the write section (see `change`).
            self.change(|| self.word(W_KIND).store(0, Ordering::Relaxed));
            // Give the histograms' pages back (a slot of 10,000 flows come
            // and gone would otherwise stay resident whole, as the next
            // owner's clear touched it all), and hand the slot on as zero.
            let zero = self.release_pages(file, index);
            if let Ok(mut inner) = file.inner.lock() {
                inner.free.push(index);
                if let Some(u) = inner.used.get_mut(index) {
                    *u = !zero;
                }
            }
        }
    }
}

impl Slot {
    /// Zeroes the histogram words of the slot's first page (which also
    /// holds its head) and punches the pages after it out of the file
    /// (`fallocate(PUNCH_HOLE)`: they read as zero again and hold no
    /// memory). Whether the histograms are zero now; if the punch failed
    /// they are left as they are, for the next owner's clear.
    fn release_pages(&self, file: &StatsFile, index: usize) -> bool {
        const PAGE: usize = 4096;
        let offset = HEADER_BYTES + index * SLOT_BYTES;
        // SAFETY: fallocate on our own file, over the slot's pages after
        // its first (the slot is page-aligned: HEADER_BYTES and SLOT_BYTES
        // are page multiples); no memory of ours is passed.
        let punched = unsafe {
            libc::fallocate(
                file.file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                (offset + PAGE) as libc::off_t,
                (SLOT_BYTES - PAGE) as libc::off_t,
            )
        } == 0;
        if punched {
            self.change(|| {
                for i in SLOT_HEAD_WORDS..PAGE / 8 {
                    // SYNC: Relaxed, inside the write section (see `change`).
                    self.word(i).store(0, Ordering::Relaxed);
                }
            });
        }
        punched
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("published", &self.is_published()).finish()
    }
}

/// A name as the slot's eight words: UTF-8, cut at a character boundary,
/// zero-padded.
fn name_words(name: &str) -> [u64; NAME_LEN / 8] {
    let mut end = name.len().min(NAME_LEN);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let mut bytes = [0u8; NAME_LEN];
    bytes[..end].copy_from_slice(&name.as_bytes()[..end]);
    let mut words = [0u64; NAME_LEN / 8];
    for (w, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
        *w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
    }
    words
}

impl StatsFile {
    fn header_word(&self, i: usize) -> &AtomicU64 {
        // SAFETY: the header map is HEADER_BYTES long, page-aligned, and
        // `i` is a header index below HEADER_BYTES / 8; never unmapped.
        unsafe { &*(self.header.as_mut_ptr() as *const AtomicU64).add(i) }
    }

    /// A free slot (index, first word), growing the file by a chunk if
    /// none is free; `None` when the file cannot grow.
    fn take(&self) -> Option<(usize, NonNull<AtomicU64>, bool)> {
        let mut inner = self.inner.lock().ok()?;
        if inner.free.is_empty() && self.grow(&mut inner).is_none() {
            // SYNC: Relaxed; a statistic of the header, read by `ringflow stat`.
            let unpublished = self.header_word(H_UNPUBLISHED);
            unpublished.store(unpublished.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            return None;
        }
        let index = inner.free.pop()?;
        let (chunk, at) = (index / CHUNK_SLOTS, index % CHUNK_SLOTS);
        let base = inner.maps[chunk].as_mut_ptr();
        // SAFETY: chunk maps are CHUNK_SLOTS * SLOT_BYTES long; `at` is in range.
        let ptr = unsafe { base.add(at * SLOT_BYTES) } as *mut AtomicU64;
        let used = inner.used.get(index).copied().unwrap_or(true);
        Some((index, NonNull::new(ptr)?, used))
    }

    /// Adds a chunk of slots; `None` once the file holds `MAX_SLOTS` or the
    /// file cannot grow (a flow then goes unpublished, never fails).
    fn grow(&self, inner: &mut Chunks) -> Option<()> {
        if inner.slots + CHUNK_SLOTS > MAX_SLOTS {
            return None;
        }
        let offset = HEADER_BYTES + inner.slots * SLOT_BYTES;
        let len = CHUNK_SLOTS * SLOT_BYTES;
        self.file.set_len((offset + len) as u64).ok()?;
        let map = MmapOptions::new().offset(offset as u64).len(len).map_raw(&self.file).ok()?;
        inner.maps.push(map);
        inner.free.extend((inner.slots..inner.slots + CHUNK_SLOTS).rev());
        inner.slots += CHUNK_SLOTS;
        inner.used.resize(inner.slots, false);
        // SYNC: Release; pairs with the reader's Acquire load of the slot
        // count (the new slots are zero: free).
        self.header_word(H_SLOTS).store(inner.slots as u64, Ordering::Release);
        Some(())
    }
}

/// The stats file of `dir` for this process, made on first use.
fn file_for(dir: &Path) -> Option<&'static StatsFile> {
    let mut files = FILES.lock().ok()?;
    if let Some(f) = files.iter().find(|f| f.dir == dir) {
        return Some(f);
    }
    let file: &'static StatsFile = Box::leak(Box::new(create(dir).ok()?));
    if files.is_empty() {
        // SAFETY: registers a plain `extern "C" fn` with no arguments.
        unsafe { libc::atexit(remove_files) };
    }
    files.push(file);
    Some(file)
}

fn create(dir: &Path) -> std::io::Result<StatsFile> {
    let stats_dir = dir.join("stats");
    match fs::DirBuilder::new().mode(0o700).create(&stats_dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let pid = std::process::id();
    let path = stats_dir.join(pid.to_string());
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).mode(0o600).open(&path)?;
    file.set_len(HEADER_BYTES as u64)?;
    let header = MmapOptions::new().len(HEADER_BYTES).map_raw(&file)?;
    let f = StatsFile {
        dir: dir.to_path_buf(),
        path,
        file,
        header,
        inner: Mutex::new(Chunks { maps: Vec::new(), free: Vec::new(), slots: 0, used: Vec::new() }),
    };
    let w = |i: usize, v: u64| {
        // SYNC: Relaxed; published by the Release store of the magic below.
        f.header_word(i).store(v, Ordering::Relaxed)
    };
    w(H_VERSION, VERSION);
    w(H_PID, u64::from(pid));
    w(H_START, process_start(pid).unwrap_or(0));
    w(H_SLOT_BYTES, SLOT_BYTES as u64);
    w(H_COUNTS_LEN, hist::COUNTS_LEN as u64);
    w(H_HISTS, HISTS as u64);
    w(H_CLOCK, crate::clock::source() as u64 + 1);
    w(H_NS_PER_TICK, crate::clock::ticks_to_ns(1 << 32));
    w(H_CREATED, unix_ns());
    let exe = std::env::current_exe().ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    for (i, word) in name_words(&exe.unwrap_or_default()).into_iter().enumerate() {
        w(H_EXE + i, word);
    }
    // SYNC: Release; pairs with the reader's Acquire load of the magic.
    f.header_word(H_MAGIC).store(MAGIC, Ordering::Release);
    Ok(f)
}

/// Removes this process's stats files as it exits (a crashed process's
/// files are removed by the next reader that finds it gone).
extern "C" fn remove_files() {
    if let Ok(files) = FILES.try_lock() {
        for f in files.iter() {
            let _ = fs::remove_file(&f.path);
        }
    }
}

/// When process `pid` started (clock ticks since boot, field 22 of
/// `/proc/<pid>/stat`): with the pid, names the process uniquely.
pub(crate) fn process_start(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after
    // the last ')'. Field 22 is the 20th after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn unix_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}
