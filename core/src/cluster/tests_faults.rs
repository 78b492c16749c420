//! The cluster under faults, on the simulated network of `tests.rs`: a
//! node silent past the node timeout is proposed down by the leader and
//! comes back up when it heals; a minority loses the quorum and refuses
//! proposals; the SAFE index never runs ahead of any node of the view; a
//! proposal in flight when its leader dies is reported and, re-proposed,
//! commits once; the test feed loses and duplicates nothing through it all;
//! the committed hook runs when the SAFE index moves.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use super::proposals::Feed;
use super::tests::{message, Sim, N};
use super::*;

/// Every view the node saw, as (group, reason).
fn views(sim: &Sim, id: u64) -> Vec<(String, ViewReason)> {
    sim.node(id)
        .seen
        .iter()
        .filter_map(|c| match &c.applied {
            Applied::View { group, reason, .. } => Some((group.clone(), *reason)),
            _ => None,
        })
        .collect()
}

fn settled(sim: &mut Sim) -> u64 {
    sim.run_until("a leader", |s| s.agreed_leader().is_some());
    let leader = sim.agreed_leader().expect("leader");
    sim.run_until("every node up in every directory", |s| {
        s.live().all(|n| n.node.directory().members(NODES_GROUP).len() == N as usize)
    });
    leader
}

#[test]
fn a_silent_node_is_proposed_down_and_comes_back_up_when_it_heals() {
    let mut sim = Sim::new(DEFAULT_COMPACT_AFTER);
    let leader = settled(&mut sim);
    let victim = (1..=N).find(|id| *id != leader).expect("a follower");
    let other = (1..=N).find(|id| *id != leader && *id != victim).expect("the other follower");
    sim.node(victim).handle.propose(&[Command::Join { group: "g".into(), host: victim, member: 5 }]).expect("q");
    sim.run_until("its member joined everywhere", |s| s.live().all(|n| n.node.directory().members("g").len() == 1));

    sim.partition(&[victim]);
    sim.run_until("the victim is down at the majority", |s| {
        s.node(leader).node.directory().is_down(victim) && s.node(other).node.directory().is_down(victim)
    });
    for id in [leader, other] {
        let seen = views(&sim, id);
        assert!(seen.contains(&("g".to_owned(), ViewReason::NodeDown { host: victim })), "{seen:?}");
        assert!(seen.contains(&(NODES_GROUP.to_owned(), ViewReason::NodeDown { host: victim })), "{seen:?}");
        assert!(sim.node(id).handle.has_quorum());
        let peer = sim.node(id).handle.status().peers.into_iter().find(|p| p.id == victim).expect("peer");
        assert!(peer.down && !peer.up, "{peer:?}");
    }
    // The victim, alone, has no quorum and refuses proposals.
    assert!(!sim.node(victim).handle.has_quorum());
    assert_eq!(sim.node(victim).handle.propose(&[message(9, 1)]), Err(ProposeError::NoQuorum));
    assert!(!sim.node(victim).node.directory().is_down(victim), "a minority cannot commit its own removal");

    sim.heal();
    sim.run_until("the victim is up again everywhere", |s| {
        s.live().all(|n| !n.node.directory().is_down(victim) && n.node.directory().members(NODES_GROUP).len() == 3)
    });
    sim.run_until("the victim has the quorum", |s| s.node(victim).handle.has_quorum());
    let run = sim.node(victim).node.settings.incarnation;
    let up = ViewReason::NodeUp { host: victim, member: Member { host: victim, member: run } };
    for id in 1..=N {
        let seen = views(&sim, id);
        assert!(seen.contains(&(NODES_GROUP.to_owned(), up)), "node {id}: {seen:?}");
        // Its group member rejoins by its own join: a node-up view.
        assert!(sim.node(id).node.directory().members("g").is_empty());
    }
    sim.node(victim).handle.propose(&[Command::Join { group: "g".into(), host: victim, member: 5 }]).expect("q");
    sim.run_until("the member is back", |s| s.live().all(|n| n.node.directory().members("g").len() == 1));
    let back = views(&sim, other).last().cloned().expect("a view");
    assert!(matches!(back, (ref g, ViewReason::NodeUp { host, .. }) if g == "g" && host == victim), "{back:?}");
}

#[test]
fn a_minority_loses_the_quorum_and_gets_it_back() {
    let mut sim = Sim::new(DEFAULT_COMPACT_AFTER);
    let leader = settled(&mut sim);
    assert!(sim.live().all(|n| n.handle.has_quorum() && n.handle.status().quorum));
    // The leader alone on its side.
    sim.partition(&[leader]);
    let majority: Vec<u64> = (1..=N).filter(|id| *id != leader).collect();
    sim.run_until("the old leader lost the quorum", |s| !s.node(leader).handle.has_quorum());
    assert_eq!(sim.node(leader).handle.propose(&[message(1, 1)]), Err(ProposeError::NoQuorum));
    // A follower counts its leader's silence from its last message, which
    // may be a step later than the leader's last word from it: wait for
    // the new leader too, or a proposal could still go to the old one.
    sim.run_until("the majority has a new leader and the quorum", |s| {
        majority.iter().all(|id| {
            let n = s.node(*id);
            n.handle.has_quorum() && majority.contains(&n.handle.status().leader)
        })
    });
    sim.node(majority[0]).handle.propose(&[message(2, 1)]).expect("the majority takes proposals");
    sim.run_until("the majority commits", |s| majority.iter().all(|id| Sim::messages(s.node(*id)).len() == 1));
    sim.heal();
    sim.run_until("the quorum is back everywhere", |s| s.live().all(|n| n.handle.has_quorum()));
    sim.run_until("the old leader catches up", |s| Sim::messages(s.node(leader)).len() == 1);
}

#[test]
fn the_safe_index_never_runs_ahead_of_a_node_of_the_view() {
    let mut sim = Sim::new(DEFAULT_COMPACT_AFTER);
    let leader = settled(&mut sim);
    let victim = (1..=N).find(|id| *id != leader).expect("a follower");
    for seq in 1..=5 {
        sim.node(leader).handle.propose(&[message(3, seq)]).expect("q");
    }
    sim.run_until("five messages safe everywhere", |s| {
        let last = Sim::messages(s.node(leader)).last().map(|m| m.0);
        last.is_some_and(|i| s.live().all(|n| n.handle.safe_index() >= i))
    });
    // The victim cut off: what the others commit now is not safe until
    // the victim holds it or is down.
    sim.partition(&[victim]);
    let held = sim.node(victim).node.last_index();
    for seq in 6..=10 {
        sim.node(leader).handle.propose(&[message(3, seq)]).expect("q");
    }
    let mut checked = 0;
    sim.run_until("the victim is down at the leader", |s| {
        for n in s.live() {
            // A node's own view of the victim: a follower commits (and
            // applies) the victim's removal on the append, before its leader.
            if !n.node.directory().is_down(victim) {
                assert!(n.handle.safe_index() <= held, "safe {} past the victim's {held}", n.handle.safe_index());
            }
            let status = n.handle.status();
            assert!(status.safe <= status.commit, "safe past commit: {status:?}");
        }
        checked += 1;
        s.node(leader).node.directory().is_down(victim)
    });
    assert!(checked > 10, "the victim's removal came before anything was checked");
    let tenth = Sim::messages(sim.node(leader)).iter().find(|m| m.2 == 10).map(|m| m.0).expect("committed");
    assert!(tenth > held);
    // Down, it no longer holds the view back.
    sim.run_until("the tenth message safe at the majority", |s| {
        s.live().filter(|n| n.node.settings.id != victim).all(|n| n.handle.safe_index() >= tenth)
    });
    sim.heal();
    sim.run_until("the victim catches up and is safe too", |s| s.node(victim).handle.safe_index() >= tenth);
}

/// With one follower left (the other down), the follower takes its commit
/// for its SAFE index: the leader tells it the index once a heartbeat, not
/// once for every commit (a send on every message's round trip).
#[test]
fn a_follower_that_derives_its_safe_index_is_told_it_once_a_heartbeat() {
    let mut sim = Sim::new(DEFAULT_COMPACT_AFTER);
    let leader = settled(&mut sim);
    let mut followers = (1..=N).filter(|id| *id != leader);
    let (victim, survivor) = (followers.next().expect("a follower"), followers.next().expect("another"));
    sim.kill(victim);
    sim.run_until("the victim is out at both survivors", |s| s.live().all(|n| n.node.directory().is_out(victim)));
    let before = sim.net.lock().expect("net").safe_to[survivor as usize];
    // One message a step (half a tick): 40 commits in 20 ticks, 10 heartbeats.
    const MESSAGES: u64 = 40;
    for seq in 1..=MESSAGES {
        sim.node(leader).handle.propose(&[message(6, seq)]).expect("q");
        sim.step();
    }
    sim.run_until("every message safe at the survivor", |s| {
        Sim::messages(s.node(survivor)).iter().filter(|m| m.1 == 6).count() == MESSAGES as usize
            && Sim::messages(s.node(survivor)).last().is_some_and(|m| s.node(survivor).handle.safe_index() >= m.0)
    });
    let told = sim.net.lock().expect("net").safe_to[survivor as usize] - before;
    // A heartbeat is 2 ticks; the run above took 20 ticks and a few more.
    assert!(told >= 1, "the survivor is still told the safe index now and then");
    assert!(told <= 15, "{told} safe messages for {MESSAGES} commits: one a commit, not one a heartbeat");
    // The leader's view: the survivor holds every message (its safe index).
    let last = Sim::messages(sim.node(leader)).last().map(|m| m.0).expect("committed");
    assert!(sim.node(leader).handle.safe_index() >= last);
}

#[test]
fn a_proposal_lost_with_its_leader_is_reported_and_commits_once_when_re_proposed() {
    let mut sim = Sim::new(DEFAULT_COMPACT_AFTER);
    let leader = settled(&mut sim);
    let follower = (1..=N).find(|id| *id != leader).expect("a follower");
    let lost = sim.node(follower).handle.take_lost().expect("the lost stream");
    assert!(sim.node(follower).handle.take_lost().is_none(), "taken once");
    // Proposed through the follower, then its leader dies before it commits.
    let id = sim.node(follower).handle.propose(&[message(4, 1)]).expect("q");
    let now = sim.now;
    sim.node_mut(follower).node.poll(now);
    sim.kill(leader);
    sim.run_until("a new leader", |s| s.agreed_leader().is_some_and(|l| l != leader));
    let mut reports = Vec::new();
    sim.run_until("the proposal reported lost", |_| {
        reports.extend(lost.try_iter());
        !reports.is_empty()
    });
    assert_eq!(reports[0].proposal, id);
    assert!(matches!(reports[0].reason, LostReason::LeaderChanged | LostReason::TimedOut), "{reports:?}");
    // Re-proposed (twice, as a careless proposer might): applied once, and
    // each proposal's id echoed on what the follower commits.
    let again = sim.node(follower).handle.propose(&[message(4, 1)]).expect("q");
    let twice = sim.node(follower).handle.propose(&[message(4, 1)]).expect("q");
    sim.run_until("both echoed", |s| {
        let echoed: HashSet<u64> = s.node(follower).seen.iter().filter_map(|c| c.proposal).collect();
        echoed.contains(&again) && echoed.contains(&twice)
    });
    for _ in 0..50 {
        sim.step();
    }
    for n in sim.live() {
        assert_eq!(Sim::messages(n).iter().filter(|m| m.1 == 4).count(), 1);
    }
    let dup = sim.node(follower).seen.iter().find(|c| c.proposal == Some(twice)).expect("echoed");
    assert_eq!(dup.applied, Applied::Unchanged);
}

#[test]
fn the_feed_loses_and_duplicates_nothing_through_leader_kills() {
    let mut sim = Sim::new(DEFAULT_COMPACT_AFTER);
    for node in sim.nodes.iter_mut().flatten() {
        node.node.feed = Some(Feed::new(std::time::Duration::from_millis(10)));
    }
    let mut killed = Vec::new();
    for round in 0..3 {
        let leader = settled(&mut sim);
        let before = Sim::messages(sim.node(leader)).len();
        sim.run_until("the feed flows", |s| Sim::messages(s.node(leader)).len() >= before + 20);
        if round < 2 {
            sim.kill(leader);
            killed.push(leader);
            // A fresh run in its place (empty log), so that a majority stays.
            let fresh = sim.make(leader);
            sim.nodes[leader as usize] = Some(fresh);
            sim.node_mut(leader).node.feed = Some(Feed::new(std::time::Duration::from_millis(10)));
        }
    }
    // The same log everywhere where it overlaps; each sender's sequence
    // numbers 1, 2, 3... without a gap or a repeat.
    let logs: Vec<Vec<(u64, u64, u64)>> = sim.live().map(Sim::messages).collect();
    let longest = logs.iter().max_by_key(|l| l.len()).expect("logs").clone();
    for log in &logs {
        for m in log {
            assert!(longest.contains(m), "{m:?} is not in the longest log");
        }
    }
    let senders: HashSet<u64> = longest.iter().map(|m| m.1).collect();
    assert!(senders.len() >= N as usize + 2, "every run fed: {senders:?}");
    for sender in senders {
        let seqs: Vec<u64> = longest.iter().filter(|m| m.1 == sender).map(|m| m.2).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "sender {sender}");
    }
    assert_eq!(killed.len(), 2);
}

#[test]
fn forged_safe_messages_never_move_the_safe_index() {
    let mut sim = Sim::new(DEFAULT_COMPACT_AFTER);
    let leader = settled(&mut sim);
    let target = (1..=N).find(|id| *id != leader).expect("a follower");
    let other = (1..=N).find(|id| *id != leader && *id != target).expect("another");
    sim.partition(&[target]);
    // What the leader sent before the cut (its safe index too) arrives.
    for _ in 0..3 {
        sim.step();
    }
    let before = sim.node(target).handle.safe_index();
    let bad_before = sim.node(target).handle.status().bad_messages;
    let term = sim.node(target).handle.status().term;
    let forge = |from, to, term| SafeMessage { incarnation: 1, from, to, term, safe: 1 << 40 }.encode();
    {
        let mut net = sim.net.lock().expect("net");
        let inbox = &mut net.inbox[target as usize];
        // Malformed or not for it: counted.
        inbox.push_back(forge(leader, other, term));
        inbox.push_back(forge(42, target, term));
        inbox.push_back(forge(target, target, term));
        let mut short = forge(leader, target, term);
        short.pop();
        inbox.push_back(short);
        // Well-formed, but from a node that is not its leader, or from a
        // past term, or from an incarnation it never heard: ignored.
        inbox.push_back(forge(other, target, term));
        inbox.push_back(forge(leader, target, term.saturating_sub(1)));
        inbox.push_back(forge(leader, target, term));
    }
    sim.step();
    let status = sim.node(target).handle.status();
    assert_eq!(status.bad_messages - bad_before, 4);
    assert_eq!(status.safe, before, "a forged safe index was taken");
    assert!(status.safe <= status.commit);
}

/// The committed hook also runs when the SAFE index moves, after the new
/// index is published: a follower's safe index moves on the leader's safe
/// message, after the commit, and a SAFE group's gateway sleeping on the
/// hook must see that move. Each node's hook records the safe index it
/// reads: the last one recorded is the node's final safe index.
#[test]
fn the_committed_hook_runs_when_the_safe_index_moves() {
    let mut sim = Sim::new(DEFAULT_COMPACT_AFTER);
    let leader = settled(&mut sim);
    let seen: Vec<Arc<Mutex<u64>>> = (0..=N).map(|_| Arc::new(Mutex::new(0))).collect();
    for id in 1..=N {
        let published = Arc::clone(&sim.node(id).handle.published);
        let cell = Arc::clone(&seen[id as usize]);
        sim.node(id).handle.set_committed_hook(Box::new(move || {
            *cell.lock().expect("cell") = published.safe();
        }));
    }
    for seq in 1..=5 {
        sim.node(leader).handle.propose(&[message(3, seq)]).expect("q");
    }
    sim.run_until("five messages safe everywhere", |s| {
        let last = Sim::messages(s.node(leader)).last().map(|m| m.0);
        last.is_some_and(|i| s.live().all(|n| n.handle.safe_index() >= i))
    });
    // A few more cycles: nothing moves any more.
    for _ in 0..50 {
        sim.step();
    }
    for id in 1..=N {
        let safe = sim.node(id).handle.safe_index();
        assert!(safe > 0);
        assert_eq!(
            *seen[id as usize].lock().expect("cell"),
            safe,
            "node {id}'s hook missed its safe index's last move"
        );
    }
}

/// A node that restarts with an empty log must not elect a node that
/// lacks what was committed: the leader commits an entry with one
/// follower while the other lags (its link to the leader cut), then the
/// leader restarts empty. The lagging node and the fresh one are a
/// majority; were the fresh one to vote for the lagging one, the entry the
/// cluster committed would be overwritten. Many rounds: raft's election
/// timeouts are random.
#[test]
fn a_restarted_node_never_elects_one_that_lacks_a_committed_entry() {
    for round in 0..20u64 {
        let mut sim = Sim::new(DEFAULT_COMPACT_AFTER);
        let leader = settled(&mut sim);
        let others: Vec<u64> = (1..=N).filter(|i| *i != leader).collect();
        let (holder, lagging) = (others[0], others[1]);
        {
            let mut net = sim.net.lock().expect("net");
            net.cut.insert((leader, lagging));
            net.cut.insert((lagging, leader));
        }
        sim.node(leader).handle.propose(&[message(7, round + 1)]).expect("queued");
        let has = |s: &Sim, id: u64| Sim::messages(s.node(id)).iter().any(|m| m.1 == 7);
        sim.run_until("committed by the leader and one follower", |s| has(s, leader) && has(s, holder));
        assert!(!has(&sim, lagging), "the lagging node got it");
        sim.kill(leader);
        let fresh = sim.make(leader);
        sim.nodes[leader as usize] = Some(fresh);
        sim.heal();
        sim.run_until("a leader again", |s| s.agreed_leader().is_some());
        sim.run_until("the committed entry at every node", |s| (1..=N).all(|id| has(s, id)));
        let lagging_log = Sim::messages(sim.node(lagging));
        assert!(lagging_log.iter().any(|m| m.1 == 7), "round {round}: lost at the lagging node");
    }
}

/// A follower of three voters commits what it holds of its leader's
/// term on the append itself: with every acknowledgement to the leader
/// cut, the leader cannot commit, but the follower that got the entry
/// applies it (the leader and it are a majority); healed, every node
/// applies the same log.
#[test]
fn a_follower_commits_its_leaders_entries_on_the_append() {
    let mut sim = Sim::new(DEFAULT_COMPACT_AFTER);
    let leader = settled(&mut sim);
    let others: Vec<u64> = (1..=N).filter(|i| *i != leader).collect();
    let (near, far) = (others[0], others[1]);
    {
        let mut net = sim.net.lock().expect("net");
        for cut in [(near, leader), (far, leader), (leader, far)] {
            net.cut.insert(cut);
        }
    }
    sim.node(leader).handle.propose(&[message(9, 1)]).expect("queued");
    let has = |s: &Sim, id: u64| Sim::messages(s.node(id)).iter().any(|m| m.1 == 9);
    sim.run_until("applied by the follower that got it", |s| has(s, near));
    let index = Sim::messages(sim.node(near)).iter().find(|m| m.1 == 9).map(|m| m.0).expect("applied");
    assert!(sim.node(leader).handle.status().commit < index, "the leader heard no acknowledgement");
    assert!(!has(&sim, leader) && !has(&sim, far));
    sim.heal();
    sim.run_until("applied everywhere", |s| (1..=N).all(|id| has(s, id)));
    let order = Sim::messages(sim.node(leader));
    for id in others {
        assert_eq!(Sim::messages(sim.node(id)), order, "node {id}");
    }
}

/// With the third node down, a follower's SAFE index follows its commit
/// on the append itself: every node of the view (it and its leader) holds
/// what it committed, and no safe message of the leader is needed (its
/// acknowledgements cut, the leader never learns of the entry's commit).
#[test]
fn with_the_third_node_down_a_followers_safe_index_needs_no_safe_message() {
    let mut sim = Sim::new(DEFAULT_COMPACT_AFTER);
    let leader = settled(&mut sim);
    let others: Vec<u64> = (1..=N).filter(|i| *i != leader).collect();
    let (follower, victim) = (others[0], others[1]);
    sim.partition(&[victim]);
    sim.run_until("the victim is down at the follower", |s| s.node(follower).node.directory().is_out(victim));
    sim.net.lock().expect("net").cut.insert((follower, leader));
    sim.node(leader).handle.propose(&[message(9, 1)]).expect("queued");
    let index = |s: &Sim| Sim::messages(s.node(follower)).iter().find(|m| m.1 == 9).map(|m| m.0);
    sim.run_until("applied by the follower", |s| index(s).is_some());
    let index = index(&sim).expect("applied");
    assert!(sim.node(follower).handle.safe_index() >= index, "{:?}", sim.node(follower).handle.status());
    assert!(sim.node(leader).handle.status().commit < index, "the leader heard no acknowledgement");
    assert!(sim.node(leader).handle.safe_index() < index);
}
