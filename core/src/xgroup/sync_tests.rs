//! The synchrony of a directly relayed group as a pure state machine:
//! frames, flushes and views in, local writes and resends out.

use super::*;

const E1: u64 = 11;
const E2: u64 = 22;
const E3: u64 = 33;

fn frame(origin: u64, seq: u64, tag: u64) -> Frame {
    Frame { origin, seq, tag, member: 7, mseq: seq, sent_at: 0, bytes: vec![origin as u8, seq as u8] }
}

fn flush(view: u64, host: u64, epoch: u64, upto: u64, links: &[(u64, u64, u64)], got: &[(u64, u64)]) -> Flush {
    Flush { view, host, epoch, upto, links: links.to_vec(), got: got.to_vec() }
}

/// What was written, as short strings: `v<id>` for a view (its frame is
/// its id's bytes here), `<origin>:<seq>` for a frame.
fn writes(s: &mut Sync) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(w) = s.next_write() {
        out.push(match w {
            Write::View(b) => format!("v{}", u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))),
            Write::Frame(f) => format!("{}:{}", f.origin, f.seq),
        });
    }
    out
}

fn view(s: &mut Sync, id: u64) {
    s.view(id, id.to_le_bytes().to_vec());
}

/// Host 2 of three, every gateway started.
fn three() -> Sync {
    let mut s = Sync::new(2, E2);
    for (h, e) in [(1, E1), (2, E2), (3, E3)] {
        s.started(h, e);
    }
    assert!(s.is_live());
    s
}

/// A view waits for every live gateway's flush and for the frames they
/// say they sent before it; frames of the installed view are written on
/// arrival, frames tagged with the next view wait for it.
#[test]
fn views_wait_for_flushes_and_the_frames_before_them() {
    let mut s = three();
    view(&mut s, 256);
    assert_eq!(s.sending_view(), 256);
    s.step();
    assert_eq!(writes(&mut s), Vec::<String>::new(), "no flush yet");
    assert!(s.flush(flush(256, 1, E1, 0, &[(2, E2, 1)], &[])));
    s.step();
    assert_eq!(writes(&mut s), Vec::<String>::new(), "host 3's flush missing");
    assert!(s.flush(flush(256, 3, E3, 0, &[(2, E2, 1)], &[])));
    s.step();
    assert_eq!(writes(&mut s), vec!["v256"]);
    // Host 1 sends in view 256: written at once.
    assert!(s.link(1, E1, 1));
    assert!(s.arrived(frame(1, 1, 256)));
    // Our own frame, in the same view.
    assert!(s.own(frame(2, 1, 256)));
    // Host 3 already applied view 512 and sends in it: it waits.
    assert!(s.link(3, E3, 1));
    assert!(s.arrived(frame(3, 1, 512)));
    s.step();
    assert_eq!(writes(&mut s), vec!["1:1", "2:1"]);
    view(&mut s, 512);
    // Host 1 flushes 512 after sending two frames; the second is late.
    assert!(s.flush(flush(512, 1, E1, 2, &[(2, E2, 1)], &[])));
    assert!(s.flush(flush(512, 3, E3, 0, &[(2, E2, 1)], &[])));
    s.step();
    assert_eq!(writes(&mut s), Vec::<String>::new(), "host 1's second frame not here yet");
    assert!(s.arrived(frame(1, 2, 256)));
    s.step();
    assert_eq!(writes(&mut s), vec!["1:2", "v512", "3:1"]);
    assert_eq!(s.pending(), 0);
}

/// What a peer sends that does not fit is refused or dropped: frames out
/// of sequence, of an unknown origin, of a link start 0 or older than the
/// current one, tagged with an installed view or a view that never comes;
/// flushes of views not pending or by hosts not required.
#[test]
fn bogus_frames_and_flushes_change_nothing() {
    let mut s = three();
    assert!(!s.arrived(frame(1, 1, 0)), "no link from host 1 yet");
    assert!(!s.link(1, E1, 0), "a link starts at 1 or later");
    assert!(!s.link(2, E2, 1), "no link from ourselves");
    assert!(s.link(1, E1, 5));
    assert!(!s.arrived(frame(1, 4, 0)), "before the link's start");
    assert!(!s.arrived(frame(1, 6, 0)), "a gap");
    assert!(s.arrived(frame(1, 5, 0)));
    assert!(!s.arrived(frame(1, 5, 0)), "a duplicate");
    assert!(!s.link(1, E1, 3), "an older link");
    assert!(!s.own(frame(1, 1, 0)), "not our own");
    assert!(!s.flush(flush(999, 1, E1, 0, &[], &[])), "no such view pending");
    view(&mut s, 256);
    assert!(!s.flush(flush(256, 9, 1, 0, &[], &[])), "host 9 is no gateway of the view");
    let many: Vec<(u64, u64)> = (0..MAX_HOSTS as u64 + 1).map(|h| (h, 0)).collect();
    assert!(!s.flush(flush(256, 1, E1, 0, &[], &many)), "too many hosts");
    // A frame tagged between the installed view and the next: never
    // written in a view nobody installs, dropped when the next comes.
    assert!(s.arrived(frame(1, 6, 100)));
    assert!(s.arrived(frame(1, 7, 256)));
    s.step();
    assert_eq!(writes(&mut s), vec!["1:5"]);
    assert!(s.flush(flush(256, 1, E1, 7, &[(2, E2, 5)], &[])));
    assert!(s.flush(flush(256, 3, E3, 0, &[], &[])));
    let step = s.step();
    assert_eq!(step.dropped, 1);
    assert_eq!(writes(&mut s), vec!["v256", "1:7"]);
    // A frame tagged with an installed view arriving late: dropped.
    assert!(s.arrived(frame(1, 8, 0)));
    assert_eq!(s.step().dropped, 1);
    assert_eq!(writes(&mut s), Vec::<String>::new());
}

/// A host taken down mid-stream: the survivors' flushes of its barrier
/// say how far each got; the cut is the furthest; the survivor holding it
/// resends what the others lack (once), and every survivor writes the same
/// prefix before the node-down view.
#[test]
fn a_departed_hosts_frames_are_cut_at_the_furthest_survivor() {
    // Host 2 got frames 1..=3 of host 1; host 3 got 1..=5.
    let mut s = three();
    let mut t = Sync::new(3, E3);
    for (h, e) in [(1, E1), (2, E2), (3, E3)] {
        t.started(h, e);
    }
    for x in [&mut s, &mut t] {
        assert!(x.link(1, E1, 1));
    }
    for k in 1..=5 {
        if k <= 3 {
            assert!(s.arrived(frame(1, k, 0)));
        }
        assert!(t.arrived(frame(1, k, 0)));
    }
    s.step();
    t.step();
    assert_eq!(writes(&mut s), vec!["1:1", "1:2", "1:3"]);
    assert_eq!(writes(&mut t), vec!["1:1", "1:2", "1:3", "1:4", "1:5"]);
    // Entry 3: host 1 down (the nodes' group first), the group's view.
    for x in [&mut s, &mut t] {
        x.node_down(1, 3);
        view(x, 3 * 256);
        assert_eq!(x.departure(1), Some(3 * 256 + 255));
        assert!(!x.arrived(frame(1, 6, 0)), "frozen");
    }
    let got_s = s.own_flush(768, 0, vec![]);
    let got_t = t.own_flush(768, 0, vec![]);
    assert_eq!(got_s.got, vec![(1, 3)]);
    assert_eq!(got_t.got, vec![(1, 5)]);
    for (v, _) in [(768, 0), (1023, 0)] {
        let fs = Flush { view: v, ..got_s.clone() };
        let ft = Flush { view: v, ..got_t.clone() };
        for x in [&mut s, &mut t] {
            assert!(x.flush(fs.clone()));
            assert!(x.flush(ft.clone()));
        }
    }
    let ss = s.step();
    assert!(ss.resend.is_empty(), "host 2 holds less");
    assert_eq!(writes(&mut s), Vec::<String>::new(), "waits for frames 4 and 5");
    let st = t.step();
    let resent: Vec<(u64, u64)> = st.resend.iter().map(|(e, f)| (*e, f.seq)).collect();
    assert_eq!(resent, vec![(E1, 4), (E1, 5)], "host 3 holds the cut: it resends what host 2 lacks");
    assert_eq!(writes(&mut t), vec!["v768"]);
    assert!(t.step().resend.is_empty(), "once");
    // The resends come through the log to both.
    for (_, f) in st.resend {
        assert!(!s.resent(E1 + 1, f.clone()), "another run's frame");
        assert!(s.resent(E1, f.clone()));
        assert!(!t.resent(E1, f), "t has it");
    }
    s.step();
    assert_eq!(writes(&mut s), vec!["1:4", "1:5", "v768"]);
    assert_eq!((s.pending(), t.pending()), (0, 0));
    assert_eq!((s.origin_epoch(1), t.origin_epoch(1)), (None, None), "a departed origin is forgotten at its barrier");
}

/// Host 2 on a partition's minority side: while held nothing is written
/// or installed, frames are kept as they arrive; released, another
/// origin's kept frames are written at once and its own wait: until
/// `own_known` (not taken down), or until the survivors' flushes of its
/// own departure's barrier give the cut (taken down: its frames beyond
/// the furthest survivor's point are dropped, the rest go before the
/// node-down view).
#[test]
fn held_frames_wait_for_the_regain_and_own_frames_for_the_cut() {
    let mut s = three();
    assert!(s.link(1, E1, 1));
    s.hold(true);
    assert!(s.is_held());
    assert!(s.arrived(frame(1, 1, 0)));
    assert!(s.own(frame(2, 1, 0)));
    s.step();
    assert_eq!(writes(&mut s), Vec::<String>::new(), "held");
    s.hold(false);
    s.step();
    assert_eq!(writes(&mut s), vec!["1:1"], "the own frame waits");
    s.own_known();
    s.step();
    assert_eq!(writes(&mut s), vec!["2:1"]);

    // Again, and this time the majority took host 2 down at entry 3:
    // host 1 got its frames up to 2, host 3 up to 3; it kept 2..=4.
    assert!(s.own(frame(2, 2, 0)));
    s.hold(true);
    assert!(s.own(frame(2, 3, 0)));
    assert!(s.own(frame(2, 4, 0)));
    s.hold(false);
    s.node_down(2, 3);
    view(&mut s, 768);
    s.own_known();
    s.step();
    assert_eq!(writes(&mut s), Vec::<String>::new(), "the survivors' flushes of the barrier are missing");
    for v in [768, 1023] {
        assert!(s.flush(flush(v, 1, E1, 0, &[], &[(2, 2)])));
        assert!(s.flush(flush(v, 3, E3, 0, &[], &[(2, 3)])));
    }
    let step = s.step();
    assert_eq!(step.dropped, 1, "frame 4: no survivor got it");
    assert_eq!(writes(&mut s), vec!["2:2", "2:3", "v768"]);
    assert_eq!(s.pending(), 0);
    // Its own origin goes on after its barrier (its node is up again).
    s.node_up(2);
    assert!(s.own(frame(2, 5, 1023)));
    s.step();
    assert_eq!(writes(&mut s), vec!["2:5"]);
}
