//! A member process that scribbles over the group's memory (issue 15): it
//! joins legitimately, finds the group's shared mappings in its own address
//! space (`/proc/self/maps`: the memfd named `ringflow:...`, mapped shared
//! and writable), and writes zeros, ones, random words over everything, or
//! random words over the first page of each mapping (headers, the member
//! table), once or without pause, while this process, another member (and
//! the keeper, having joined first), uses every operation.
//!
//! What must hold, for every value: each operation returns valid data (a
//! message no longer than the group's maximum, a view no larger than its
//! member limit) or a typed error, within its deadline; never a hang (every
//! operation runs under a watchdog), a panic (on any thread: a panic hook
//! counts them) or an allocation of a forged size (a counting allocator
//! records the largest). The same after the scribbler is killed, and
//! dropping the member does not block.
//!
//! The random runs print their seed; `RINGFLOW_GROUP_SEED=<n>` replays one.
#![cfg(any())] // Until the group core lands on main.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use common::group::*;
use common::{is_child, within};
use ringflow::{Deadline, Event, Group};

const ENTRY: &str = "group_hostile_child";
const LOG: usize = 1 << 16;
const MAX_MEMBERS: usize = 64;
/// The largest single allocation the victim may make.
const ALLOC_LIMIT: usize = 4 << 20;
const SHORT: Duration = Duration::from_millis(10);

// ---- the largest allocation, and panics on any thread --------------------------

struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);
static PANICS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only records sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's promise for `layout` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: the caller's promise is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn count_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::Relaxed);
            default(info);
        }));
    });
}

// ---- the scribbler ---------------------------------------------------------------

/// The group's shared, writable mappings in this process: (address, length).
fn group_mappings() -> Vec<(usize, usize)> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let found: Vec<(usize, usize)> = maps
        .lines()
        .filter(|l| l.contains("/memfd:") && l.split_whitespace().nth(1) == Some("rw-s"))
        .map(|l| {
            let range = l.split_whitespace().next().unwrap();
            let (a, b) = range.split_once('-').unwrap();
            let (a, b) = (usize::from_str_radix(a, 16).unwrap(), usize::from_str_radix(b, 16).unwrap());
            (a, b - a)
        })
        .collect();
    assert!(!found.is_empty(), "no shared writable ringflow mapping in:\n{maps}");
    found
}

/// xorshift64*: a seeded, reproducible stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value a shared word might be forged to: small, huge, around
    /// powers of two, or random.
    fn forged(&mut self) -> u64 {
        match self.next() % 6 {
            0 => 0,
            1 => u64::MAX - self.next() % 4,
            2 => 1 << (self.next() % 64),
            3 => (1 << (self.next() % 64)) - 1,
            4 => self.next() % 4096,
            _ => self.next(),
        }
    }
}

/// The 8-byte word at `addr` of a mapping.
fn word(addr: usize) -> &'static AtomicU64 {
    // SAFETY: `addr` is 8-aligned inside a shared mapping of this process
    // that stays mapped while the group is held (the child never leaves);
    // AtomicU64 may alias memory other processes write.
    unsafe { &*(addr as *const AtomicU64) }
}

fn scribble(mode: &str, rng: &mut Rng) {
    for (base, len) in group_mappings() {
        let words = len / 8;
        match mode {
            "zero" | "ones" => {
                let v = if mode == "zero" { 0 } else { u64::MAX };
                for i in 0..words {
                    word(base + 8 * i).store(v, Ordering::Relaxed);
                }
            }
            "random" => {
                for i in 0..words {
                    word(base + 8 * i).store(rng.forged(), Ordering::Relaxed);
                }
            }
            "head" => {
                for i in 0..words.min(512) {
                    word(base + 8 * i).store(rng.forged(), Ordering::Relaxed);
                }
            }
            "storm" => {
                for _ in 0..64 {
                    let i = (rng.next() % words as u64) as usize;
                    word(base + 8 * i).store(rng.forged(), Ordering::Relaxed);
                }
            }
            other => panic!("unknown mode {other}"),
        }
    }
}

// ---- the victim --------------------------------------------------------------------

/// Each operation once, in turn, `rounds` times; every outcome must be
/// valid data or a typed error. Outcomes by kind.
fn operate(g: &mut Group, rounds: usize, outcomes: &mut BTreeMap<String, usize>) {
    let mut buf = vec![0u8; MAX_MSG];
    let mut msg = Vec::new();
    payload(9, 0, 0, &mut msg);
    for i in 0..rounds {
        let outcome = match i % 6 {
            0 => check_event(g.try_recv().map_err(|e| format!("recv {e:?}")), &mut buf),
            1 => check_event(g.recv_timeout(SHORT).map_err(|e| format!("recv {e:?}")), &mut buf),
            2 => g.try_mcast(&msg).map(|_| "sent".to_string()).unwrap_or_else(|e| format!("mcast {e:?}")),
            3 => g.mcast_timeout(&msg, SHORT).map(|_| "sent".to_string()).unwrap_or_else(|e| format!("mcast {e:?}")),
            4 => match g.loan_deadline(64, Deadline::after(SHORT)) {
                Ok(mut loan) => {
                    loan.write(0, &msg[..64.min(msg.len())]);
                    loan.send().map(|_| "sent".to_string()).unwrap_or_else(|e| format!("loan send {e:?}"))
                }
                Err(e) => format!("loan {e:?}"),
            },
            _ => {
                let n = g.members().len();
                assert!(n <= MAX_MEMBERS, "{n} members in a group of at most {MAX_MEMBERS}");
                let _ = (g.local_member(), g.stats());
                "members".to_string()
            }
        };
        // The variant's name, not its fields.
        let kind = outcome.split(|c: char| c == '(' || c == '{').next().unwrap_or_default().trim().to_string();
        *outcomes.entry(kind).or_default() += 1;
    }
}

fn check_event(r: Result<Event<'_>, String>, buf: &mut [u8]) -> String {
    match r {
        Ok(Event::Message(mut m)) => {
            assert!(m.len() <= MAX_MSG, "a {}-byte message in a group of at most {MAX_MSG}", m.len());
            match m.read_into(buf) {
                Ok(n) => {
                    assert!(n <= MAX_MSG, "read {n} bytes");
                    "message".into()
                }
                Err(e) => format!("read {e:?}"),
            }
        }
        Ok(Event::View(v)) => {
            assert!(v.members.len() <= MAX_MEMBERS, "a view of {} members", v.members.len());
            assert!(v.changes.len() <= 2 * MAX_MEMBERS, "a view of {} changes", v.changes.len());
            "view".into()
        }
        Ok(Event::Lost { .. }) => "lost".into(),
        Err(e) => e,
    }
}

fn run(mode: &str) {
    ringflow_testkit::isolate_runtime_dir();
    count_panics();
    let seed = std::env::var("RINGFLOW_GROUP_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(mono_ns) | 1;
    eprintln!("{mode}: seed {seed}");
    let tmp = ringflow_testkit::temp_dir("ghostile");
    let dir = tmp.path();
    let name = format!("hostile-{mode}");
    let spec = Spec::new("agreed", "block", LOG);
    let mut g = Group::join_timeout(&name, &spec.options(), LONG).unwrap();
    let mut rec = Recorder::new(&g);
    rec.next(&mut g);
    let extra = [("MODE", mode.to_string()), ("SEED", seed.to_string())];
    let mut hostile = spawn_member(ENTRY, dir, &name, &spec, "h", "scribbler", &extra);
    await_stage(dir, "h", "scribbled");
    let ops = within(&format!("{mode}: operations on scribbled memory"), move || {
        let mut outcomes = BTreeMap::new();
        operate(&mut g, 300, &mut outcomes);
        (g, outcomes)
    });
    let (g, mut outcomes) = ops;
    eprintln!("{mode}: while the scribbler lives: {outcomes:?}");
    kill9(&mut hostile);
    let (g, after) = within(&format!("{mode}: operations after the scribbler's death"), move || {
        let mut g = g;
        outcomes.clear();
        operate(&mut g, 300, &mut outcomes);
        (g, outcomes)
    });
    eprintln!("{mode}: after its death: {after:?}");
    within(&format!("{mode}: dropping the member"), move || drop(g));
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(largest <= ALLOC_LIMIT, "an allocation of {largest} bytes (a forged size?)");
    assert_eq!(PANICS.load(Ordering::Relaxed), 0, "a thread panicked");
}

#[test]
fn zeros_over_the_group_memory() {
    run("zero");
}

#[test]
fn ones_over_the_group_memory() {
    run("ones");
}

#[test]
fn random_words_over_the_group_memory() {
    run("random");
}

#[test]
fn random_words_over_the_headers_and_member_table() {
    run("head");
}

#[test]
fn a_storm_of_random_words_while_the_member_works() {
    run("storm");
}

#[test]
#[ignore = "child process of the hostile group tests"]
fn group_hostile_child() {
    if !is_child() {
        return;
    }
    let ctx = Ctx::from_env();
    assert_eq!(ctx.arg("ROLE"), "scribbler");
    let mut g = ctx.join();
    let mut rec = Recorder::new(&g);
    rec.next(&mut g);
    // Legitimate traffic first, so the log holds real frames.
    let mut buf = Vec::new();
    for n in 0..100 {
        payload(5, n, 0, &mut buf);
        mcast_recording(&mut g, &mut rec, &buf, Form::Copy).unwrap();
    }
    let mode = ctx.arg("MODE");
    let mut rng = Rng(ctx.arg("SEED").parse().unwrap());
    let storm = mode == "storm";
    scribble(&mode, &mut rng);
    ctx.mark("scribbled");
    // The group is never touched again from here: only the memory is.
    let _keep = g;
    loop {
        if storm {
            scribble("storm", &mut rng);
            std::thread::sleep(Duration::from_micros(100));
        } else {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}
