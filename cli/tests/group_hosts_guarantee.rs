//! A crossing group's guarantee from the engines' configuration (issue
//! 17): two `ringflow engine` processes on loopback started first with
//! `RINGFLOW_CLUSTER_GROUPS=xg:safe` make "xg" a SAFE group on their
//! hosts, and members that join afterwards, one per host, are in a SAFE
//! group (a join asking AGREED is refused) whose messages cross. An
//! engine configured SAFE for a group its members made AGREED does not
//! start, and says why. Members write what they deliver, one line per
//! event, to a file the test reads.

use std::path::PathBuf;
use std::time::Duration;

mod support;

use ringflow::{Group, GroupOptions, Guarantee, JoinError};
use support::groups::{events, texts_of, MemberChild};
use support::{
    child_arg, child_dir, free_ports, is_child, private_dir, wait_until, write_marker, AppProc, EngineSpec, LONG,
};

const NAMES: [&str; 2] = ["a", "b"];
/// Messages each member multicasts.
const EACH: usize = 10;

/// A member of "xg", which its host's engine made: a join asking AGREED
/// (the default) is refused, the answer written to `refused-NAME`; it
/// joins asking SAFE, writes the group's guarantee to `guarantee-NAME`,
/// and once a view holds both members multicasts EACH messages and writes
/// every event it delivers.
#[test]
#[ignore]
fn child_configured_member() {
    if !is_child() {
        return;
    }
    let dir = child_dir();
    let me = child_arg("NAME");
    std::env::set_var("RINGFLOW_RUNTIME_DIR", child_arg("RUNTIME"));
    let refused = match Group::join_timeout("xg", &GroupOptions::new(), LONG) {
        Err(JoinError::OptionsDiffer { what }) => format!("refused: {what}"),
        Err(e) => format!("another error: {e}"),
        Ok(_) => "admitted".to_owned(),
    };
    write_marker(&dir, &format!("refused-{me}"), &refused);
    let member = MemberChild::join("xg", &GroupOptions::new().guarantee(Guarantee::Safe));
    write_marker(&dir, &format!("guarantee-{me}"), &member.group.guarantee().to_string());
    member.write_and_send_among(2, EACH, Duration::from_millis(20), Duration::ZERO);
}

#[test]
fn engines_started_first_make_the_configured_safe_group() {
    if is_child() {
        return;
    }
    let top = ringflow_testkit::temp_dir("group-hosts-guarantee");
    let runtimes: Vec<PathBuf> = (0..2).map(|i| private_dir(top.path(), &format!("host{i}"))).collect();
    let all = free_ports(2);
    // The engines first: nobody keeps "xg" when their gateways join it.
    let engines: Vec<_> = (0..2)
        .map(|i| {
            let listen = format!("127.0.0.1:{}", all[i]);
            EngineSpec::new(&runtimes[i], &listen)
                .cluster_node(all[i], &all)
                .env("RINGFLOW_CLUSTER_GROUPS", "xg:safe")
                .start()
        })
        .collect();
    let members: Vec<AppProc> = (0..2)
        .map(|i| {
            let args = [
                ("DIR", top.path().display().to_string()),
                ("NAME", NAMES[i].to_owned()),
                ("RUNTIME", runtimes[i].display().to_string()),
            ];
            AppProc::spawn("child_configured_member", &args)
        })
        .collect();
    let marker = |kind: &str, name: &str| std::fs::read_to_string(top.path().join(format!("{kind}-{name}"))).ok();
    wait_until("every member delivered every message", || {
        let counts: Vec<usize> =
            NAMES.iter().map(|n| events(top.path(), n).iter().filter(|l| l.starts_with("msg ")).count()).collect();
        if counts.iter().all(|c| *c >= 2 * EACH) {
            Ok(())
        } else {
            Err(format!("messages delivered {counts:?}"))
        }
    });
    for name in NAMES {
        assert_eq!(marker("refused", name).as_deref(), Some("refused: guarantee"), "{name}'s AGREED join");
        assert_eq!(marker("guarantee", name).as_deref(), Some("SAFE"), "{name}'s group");
    }
    // Each sender's messages crossed: once each, in order, at both hosts,
    // and both members delivered them in one order.
    let seqs: Vec<Vec<String>> =
        NAMES.iter().map(|n| events(top.path(), n).into_iter().filter(|l| l.starts_with("msg ")).collect()).collect();
    for (r, seq) in NAMES.iter().zip(&seqs) {
        for s in NAMES {
            let want: Vec<String> = (1..=EACH).map(|k| format!("{s}-{k}")).collect();
            assert_eq!(texts_of(seq, s), want, "{s}'s messages at {r}");
        }
    }
    assert_eq!(seqs[0][..2 * EACH], seqs[1][..2 * EACH], "a and b delivered another order");
    drop(members);
    drop(engines);
}

/// A group its member made AGREED, and an engine configured to give it
/// SAFE: the engine exits at its start, naming the group and both
/// guarantees; the member stays in its group of one host.
#[test]
fn an_engine_configured_safe_for_an_agreed_group_does_not_start() {
    if is_child() {
        return;
    }
    let top = ringflow_testkit::temp_dir("group-hosts-guarantee-differs");
    let runtime = private_dir(top.path(), "host0");
    let member = Group::join_timeout("xm", &GroupOptions::new().runtime_dir(&runtime), LONG).expect("an AGREED member");
    let port = free_ports(1)[0];
    let listen = format!("127.0.0.1:{port}");
    let (status, stderr) = EngineSpec::new(&runtime, &listen)
        .cluster_node(port, &[port])
        .env("RINGFLOW_CLUSTER_GROUPS", "xm:safe")
        .run_to_end();
    assert!(!status.success(), "the engine started: {stderr}");
    for part in ["cluster.groups", "\"xm\"", "as AGREED", "names it SAFE"] {
        assert!(stderr.contains(part), "{stderr:?} should say {part:?}");
    }
    assert_eq!(member.crossing_host(), None);
    assert_eq!(member.guarantee(), Guarantee::Agreed);
}
