use std::io::Write;
use std::sync::atomic::Ordering;

use super::*;

fn temp_dir(tag: &str) -> ringflow_testkit::TempDir {
    ringflow_testkit::temp_dir(&format!("stats-{tag}"))
}

fn ours(dir: &std::path::Path) -> ProcessStats {
    let all = read_dir(dir).unwrap();
    all.into_iter().find(|p| p.pid == std::process::id()).expect("this process's file")
}

#[test]
fn a_slot_is_seen_from_outside_with_its_counts_and_histogram() {
    let tmp = temp_dir("seen");
    let dir = tmp.path().to_path_buf();
    let slot = Slot::open(&dir, SlotKind::Flow, "orders", 1, 4242);
    assert!(slot.is_published());
    slot.add(FlowCounter::Sent as usize, 7);
    slot.add(FlowCounter::Received as usize, 3);
    for ns in [100, 200, 300] {
        slot.hist(FLOW_LATENCY).record(ns);
    }
    let p = ours(&dir);
    let s = p.slots.iter().find(|s| s.name == "orders").expect("the slot");
    assert_eq!((s.kind, s.peer, s.info), (SlotKind::Flow, 4242, 1));
    assert_eq!(s.counter("sent"), Some(7));
    assert_eq!(s.counter("received"), Some(3));
    assert_eq!(s.hists[FLOW_LATENCY].len(), 3);
    assert!(s.hists[FLOW_LATENCY].equivalent(s.hists[FLOW_LATENCY].value_at_quantile(0.5), 200));
    // Reset: the histogram empties, counters stay.
    slot.reset_hists();
    let p = ours(&dir);
    let s = p.slots.iter().find(|s| s.name == "orders").unwrap();
    assert_eq!((s.hists[FLOW_LATENCY].len(), s.counter("sent")), (0, Some(7)));
    // Dropped: the slot is free, and reused by the next one.
    drop(slot);
    assert!(ours(&dir).slots.iter().all(|s| s.name != "orders"));
    let again = Slot::open(&dir, SlotKind::Engine, "engine-0", 0, 0);
    let p = ours(&dir);
    let s = p.slots.iter().find(|s| s.name == "engine-0").unwrap();
    assert_eq!((s.kind, s.counter("cycles")), (SlotKind::Engine, Some(0)));
    drop(again);
}

#[test]
fn files_grow_by_chunks_and_every_slot_stays_readable() {
    let tmp = temp_dir("grow");
    let dir = tmp.path().to_path_buf();
    let slots: Vec<Slot> = (0..20).map(|i| Slot::open(&dir, SlotKind::Flow, &format!("f{i}"), 0, 0)).collect();
    for (i, s) in slots.iter().enumerate() {
        s.add(FlowCounter::Sent as usize, i as u64);
    }
    let p = ours(&dir);
    assert_eq!(p.slots.len(), 20);
    for s in &p.slots {
        let i: u64 = s.name[1..].parse().unwrap();
        assert_eq!(s.counter("sent"), Some(i));
    }
}

#[test]
fn a_slot_changing_under_every_copy_is_skipped_not_misread() {
    let tmp = temp_dir("torn");
    let dir = tmp.path().to_path_buf();
    let slot = Slot::open(&dir, SlotKind::Flow, "torn", 0, 0);
    // Hold the slot in a write section (odd sequence) as a writer stopped
    // mid-change would.
    let seq = slot.counter(0) as *const _ as usize - W_COUNTERS * 8 + W_SEQ * 8;
    // SAFETY: the slot's first word, alive while `slot` is.
    let seq = unsafe { &*(seq as *const std::sync::atomic::AtomicU64) };
    let s = seq.load(Ordering::Relaxed);
    seq.store(s | 1, Ordering::Relaxed);
    let p = ours(&dir);
    assert!(p.slots.iter().all(|s| s.name != "torn"));
    assert_eq!(p.skipped, 1);
    seq.store(s, Ordering::Relaxed);
    assert!(ours(&dir).slots.iter().any(|s| s.name == "torn"));
}

#[test]
fn garbage_files_and_files_of_gone_processes_are_skipped() {
    let tmp = temp_dir("garbage");
    let dir = tmp.path().to_path_buf();
    let _slot = Slot::open(&dir, SlotKind::Flow, "real", 0, 0);
    let stats = dir.join("stats");
    // A file named after a live process (pid 1) but full of garbage.
    let mut f = std::fs::File::create(stats.join("1")).unwrap();
    f.write_all(&vec![0xA5; 3 * 4096]).unwrap();
    // A file of a process that cannot exist.
    std::fs::write(stats.join("999999999"), b"whatever").unwrap();
    std::fs::write(stats.join("not-a-pid"), b"x").unwrap();
    let all = read_dir(&dir).unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].pid, std::process::id());
    assert!(!stats.join("999999999").exists(), "a gone process's file is removed");
}

#[test]
fn heap_slots_work_unseen() {
    let slot = Slot::on_heap();
    slot.add(FlowCounter::Sent as usize, 2);
    slot.hist(FLOW_RTT).record(5_000);
    assert_eq!(slot.get(FlowCounter::Sent as usize), 2);
    assert_eq!(slot.hist(FLOW_RTT).snapshot().len(), 1);
    assert!(!slot.is_published());
}

/// A slot taken again after its owner dropped it starts empty (its
/// histograms are zeroed because it was used), while a fresh one is handed
/// out without a write to its histograms: their pages stay untouched.
#[test]
fn a_reused_slot_starts_empty_and_a_fresh_one_is_not_touched() {
    let tmp = temp_dir("reuse");
    let dir = tmp.path().to_path_buf();
    let first = Slot::open(&dir, SlotKind::Flow, "first", 0, 0);
    first.add(FlowCounter::Sent as usize, 9);
    for ns in [10, 1_000, 100_000, 10_000_000] {
        first.hist(FLOW_LATENCY).record(ns);
    }
    drop(first);
    let again = Slot::open(&dir, SlotKind::Flow, "again", 0, 0);
    assert_eq!(again.get(FlowCounter::Sent as usize), 0);
    assert_eq!(again.hist(FLOW_LATENCY).snapshot().len(), 0, "the last owner's latencies are gone");
    // Fresh slots (a new process-local one, here) cost their histograms no
    // resident memory until something is recorded.
    let before = resident_kib();
    // Touched, 256 slots would be about 166 MiB; the bound leaves room for
    // what other tests of this process allocate meanwhile.
    let fresh: Vec<Slot> = (0..256).map(|_| Slot::on_heap()).collect();
    let grown = resident_kib().saturating_sub(before);
    assert!(grown < 256 * 128, "256 fresh slots made {grown} KiB resident");
    drop((again, fresh));
}

/// This process's resident memory (VmRSS), in KiB.
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Pages of the slot's histograms resident in its file (mincore over the
/// slot's words after its first page).
fn resident_hist_pages(slot: &Slot) -> usize {
    let first = slot.counter(0) as *const _ as usize - W_COUNTERS * 8;
    let (start, len) = (first + 4096, SLOT_BYTES - 4096);
    let mut vec = vec![0u8; len / 4096];
    // SAFETY: mincore reads the page state of the slot's own mapped pages
    // (page-aligned, inside the stats file's chunk map, never unmapped).
    assert_eq!(unsafe { libc::mincore(start as *mut libc::c_void, len, vec.as_mut_ptr()) }, 0);
    vec.iter().filter(|&&b| b & 1 != 0).count()
}

/// A slot handed back gives its histograms' pages back, and the next owner
/// of the slot gets zero histograms without touching them.
#[test]
fn a_freed_slot_gives_its_pages_back_and_comes_back_zero() {
    let tmp = temp_dir("punch");
    let dir = tmp.path().to_path_buf();
    let slot = Slot::open(&dir, SlotKind::Flow, "churn", 0, 0);
    for h in 0..HISTS {
        for ns in (1..40).map(|i| 1u64 << i) {
            slot.hist(h).record(ns);
        }
    }
    assert!(resident_hist_pages(&slot) > 0);
    drop(slot);
    // The slot is the free list's last: the next open takes it again.
    let again = Slot::open(&dir, SlotKind::Flow, "churn-again", 0, 0);
    assert_eq!(resident_hist_pages(&again), 0, "nothing resident after the first page");
    for h in 0..HISTS {
        assert_eq!(again.hist(h).snapshot().len(), 0, "histogram {h} starts empty");
    }
}
