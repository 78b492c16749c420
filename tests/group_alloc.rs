//! A group's hot path allocates nothing: multicast (copy, gather, loan) and
//! receive (in place, or copied on a Lap group), counted by an allocator
//! that counts this thread's allocations only.

use ringflow::{Event, Group, GroupOptions, SlowMember};

#[global_allocator]
static GLOBAL: ringflow_testkit::ThreadCounting = ringflow_testkit::ThreadCounting;

use ringflow_testkit::thread_allocs as allocs;

fn exercise(a: &mut Group, b: &mut Group, rounds: usize) {
    let mut buf = [0u8; 256];
    for i in 0..rounds {
        match i % 3 {
            0 => a.mcast(&[i as u8; 64]).unwrap(),
            1 => a.mcast_gather(&[&[1; 10], &[2; 20]]).unwrap(),
            _ => {
                let mut loan = a.loan(100).unwrap();
                loan.write(0, &[3; 100]);
                loan.send().unwrap();
            }
        }
        for g in [&mut *a, &mut *b] {
            match g.recv().unwrap() {
                Event::Message(mut m) => {
                    let n = match m.payload() {
                        Some(p) => p.len(),
                        None => m.read_into(&mut buf).unwrap(),
                    };
                    assert!(n > 0);
                }
                _ => panic!("only messages after the views"),
            }
        }
    }
}

#[test]
fn multicast_and_receive_allocate_nothing() {
    ringflow_testkit::isolate_runtime_dir();
    for (name, slow) in [("alloc-block", SlowMember::Block), ("alloc-lap", SlowMember::Lap)] {
        let opts = GroupOptions::new().slow_member(slow).log_capacity(1 << 16).max_message(1024);
        let mut a = Group::join(name, &opts).unwrap();
        let mut b = Group::join(name, &opts).unwrap();
        // The views first (a sees two, b one); they may allocate (a Vec of
        // members per view).
        for _ in 0..2 {
            assert!(matches!(a.recv().unwrap(), Event::View(_)));
        }
        assert!(matches!(b.recv().unwrap(), Event::View(_)));
        exercise(&mut a, &mut b, 30);
        let before = allocs();
        exercise(&mut a, &mut b, 3000);
        assert_eq!(allocs() - before, 0, "{name}: the hot path allocated");
    }
}
