//! Engine tests: threads, round-robin, pinning, idling and wakeups,
//! invoker mode, shutdown and drop. Every test asserts behaviour through
//! counters and never spins on more than one thread (engines here idle by
//! parking, or by the default backoff whose spin phase is brief).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use super::thread::Plan;
use super::*;
use crate::config::{configured_cpus, EngineConfig, EngineConfigBuilder, IdleStrategy, ThreadingMode};

/// Engine tests count their engines' threads in the process, so they run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    // Engine threads keep their statistics in the default runtime directory.
    ringflow_testkit::isolate_runtime_dir();
    // Named apart from the engines other tests of the crate start meanwhile.
    super::thread::TEST_THREAD_PREFIX.with(|p| p.set(Some(TEST_THREADS)));
    let guard = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    // A thread an earlier test detached (a stuck agent it then released)
    // may still be on its way out: start from none.
    assert!(eventually(|| engine_threads() == 0), "an earlier test left engine threads behind");
    guard
}

fn config(edit: impl FnOnce(EngineConfigBuilder) -> EngineConfigBuilder) -> EngineConfig {
    edit(EngineConfig::builder()).build().expect("valid test configuration")
}

/// Polls `condition` every millisecond for up to 20 s; a bound for failing, not a measurement.
fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..20_000 {
        if condition() {
            return true;
        }
        thread::sleep(Duration::from_millis(1));
    }
    condition()
}

/// The name of the engine threads these tests start, less `-N` (at most 15
/// bytes with it: what the kernel keeps of a thread's name).
const TEST_THREADS: &str = "rf-enginetest";

/// Threads of this process named as the engines these tests start.
fn engine_threads() -> usize {
    let tasks = std::fs::read_dir("/proc/self/task").expect("procfs");
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with(TEST_THREADS))
        .count()
}

/// What a test agent saw; shared with the test.
#[derive(Default)]
struct Probe {
    calls: AtomicUsize,
    closes: AtomicUsize,
    pending: AtomicUsize,
    thread: Mutex<Option<String>>,
    affinity: Mutex<Option<Vec<usize>>>,
}

/// Does one item per call while `pending` lasts, then idles.
struct TestAgent {
    name: String,
    probe: Arc<Probe>,
}

impl Agent for TestAgent {
    fn name(&self) -> &str {
        &self.name
    }

    fn do_work(&mut self) -> usize {
        if self.probe.calls.fetch_add(1, SeqCst) == 0 {
            *self.probe.thread.lock().unwrap() = thread::current().name().map(str::to_owned);
            *self.probe.affinity.lock().unwrap() = Some(current_affinity());
        }
        let took = self.probe.pending.fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1)).is_ok();
        usize::from(took)
    }

    fn on_close(&mut self) {
        self.probe.closes.fetch_add(1, SeqCst);
    }
}

fn agents(count: usize, pending: usize) -> (Vec<Box<dyn Agent>>, Vec<Arc<Probe>>) {
    let probes: Vec<Arc<Probe>> =
        (0..count).map(|_| Arc::new(Probe { pending: AtomicUsize::new(pending), ..Probe::default() })).collect();
    let agents = probes
        .iter()
        .enumerate()
        .map(|(i, probe)| {
            Box::new(TestAgent { name: format!("agent-{i}"), probe: Arc::clone(probe) }) as Box<dyn Agent>
        })
        .collect();
    (agents, probes)
}

/// The CPUs the calling thread may run on.
fn current_affinity() -> Vec<usize> {
    // SAFETY: cpu_set_t is a plain bit array; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; `set` is writable and exactly the size passed.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    assert_eq!(rc, 0, "sched_getaffinity: {}", std::io::Error::last_os_error());
    // SAFETY: every index is below CPU_SETSIZE, the size of `set`.
    (0..libc::CPU_SETSIZE as usize).filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) }).collect()
}

#[test]
fn agents_run_round_robin_on_two_threads() {
    let _serial = serial();
    let cfg = config(|b| b.threads(2).idle(IdleStrategy::Park));
    let (agents, probes) = agents(4, 5);
    let engine = Engine::start(&cfg, agents).expect("start");
    assert!(eventually(|| engine.stats().iter().map(|s| s.work_items).sum::<u64>() == 20));
    for (i, probe) in probes.iter().enumerate() {
        let expected = format!("{TEST_THREADS}-{}", i % 2);
        assert_eq!(probe.thread.lock().unwrap().as_deref(), Some(expected.as_str()), "agent {i}");
    }
    let stats = engine.stats();
    assert_eq!(stats.iter().map(|s| (s.index, s.agents, s.work_items)).collect::<Vec<_>>(), [(0, 2, 10), (1, 2, 10)]);
    let report = engine.shutdown(Duration::from_secs(20)).expect("clean shutdown");
    assert_eq!(report, ShutdownReport { threads_joined: 2, agents_closed: 4 });
    assert!(probes.iter().all(|p| p.closes.load(SeqCst) == 1));
    assert!(eventually(|| engine_threads() == 0), "engine threads left behind");
}

#[test]
fn a_thread_pinned_to_cpu_0_runs_only_there() {
    let _serial = serial();
    let cfg = config(|b| b.threads(1).cores([0]).idle(IdleStrategy::Park));
    let (agents, probes) = agents(1, 0);
    let engine = Engine::start(&cfg, agents).expect("start");
    assert!(eventually(|| probes[0].affinity.lock().unwrap().is_some()));
    assert_eq!(probes[0].affinity.lock().unwrap().as_deref(), Some(&[0][..]));
    assert_eq!(engine.stats()[0].core, Some(0));
    engine.shutdown(Duration::from_secs(20)).expect("clean shutdown");
}

#[test]
fn an_unpinnable_core_fails_start_and_no_agent_runs() {
    let _serial = serial();
    // CPU 1000 fits a cpu_set_t but exists on no test host: the kernel refuses it.
    let plan = Plan { cores: vec![None, Some(1000)], idle: IdleStrategy::Park, park_cap: PARK_CAP };
    let (agents, probes) = agents(4, 1);
    match Engine::dedicated(&plan, agents) {
        Err(EngineError::Pin { core: 1000 }) => {}
        other => panic!("expected Pin {{ core: 1000 }}, got {other:?}"),
    }
    assert!(probes.iter().all(|p| p.calls.load(SeqCst) == 0), "no agent may run before every thread is pinned");
    assert!(probes.iter().all(|p| p.closes.load(SeqCst) == 1), "agents of a failed start are closed once");
    assert!(eventually(|| engine_threads() == 0), "engine threads left behind");
}

#[test]
fn a_configured_cpu_outside_the_allowed_set_is_a_pin_error() {
    let _serial = serial();
    let refused = thread::spawn(|| {
        (0..configured_cpus()).find(|&id| !core_affinity::set_for_current(core_affinity::CoreId { id }))
    })
    .join()
    .expect("probe thread");
    let Some(core) = refused else {
        eprintln!("skipped: every configured CPU can be pinned here, so no unpinnable core can be configured");
        return;
    };
    let cfg = config(|b| b.threads(1).cores([core]).idle(IdleStrategy::Park));
    let (agents, _probes) = agents(1, 0);
    assert!(matches!(Engine::start(&cfg, agents), Err(EngineError::Pin { core: c }) if c == core));
}

#[test]
fn an_idle_thread_parks_and_wake_makes_it_run() {
    let _serial = serial();
    // Parks without a practical bound, so only `wake` can end them.
    let plan = Plan { cores: vec![None], idle: IdleStrategy::Park, park_cap: Duration::from_secs(3600) };
    let (agents, probes) = agents(1, 0);
    let engine = Engine::dedicated(&plan, agents).expect("start");
    assert!(eventually(|| engine.stats()[0].idle.parks >= 1), "an idle thread parks");
    let before = engine.stats()[0];
    probes[0].pending.store(1, SeqCst);
    engine.wake();
    assert!(eventually(|| engine.stats()[0].work_items == 1), "wake ends the park and the work is done");
    let after = engine.stats()[0];
    assert!(after.duty_cycles > before.duty_cycles);
    assert_eq!(after.idle.spins + after.idle.yields, 0, "park never spins or yields");
    // A waker handle works the same, from another thread.
    let waker = engine.waker();
    probes[0].pending.store(1, SeqCst);
    thread::spawn(move || waker.wake()).join().expect("waker thread");
    assert!(eventually(|| engine.stats()[0].work_items == 2));
    engine.shutdown(Duration::from_secs(20)).expect("clean shutdown");
}

#[test]
fn backoff_spins_then_yields_then_parks() {
    let _serial = serial();
    let cfg = config(|b| b.threads(1).backoff_spins(50).backoff_yields(5));
    assert!(matches!(cfg.engine().idle, IdleStrategy::Backoff { spins: 50, yields: 5, .. }));
    let (agents, _probes) = agents(1, 0);
    let engine = Engine::start(&cfg, agents).expect("start");
    assert!(eventually(|| engine.stats()[0].idle.parks >= 3));
    let idle = engine.stats()[0].idle;
    assert_eq!((idle.spins, idle.yields), (50, 5), "one backoff without work: spins, then yields, then parks only");
    engine.shutdown(Duration::from_secs(20)).expect("clean shutdown");
}

#[test]
fn idler_steps_follow_the_strategy() {
    let mut idler = Idler::new(IdleStrategy::Backoff { spins: 3, yields: 2, park: Duration::from_micros(4) });
    for _ in 0..8 {
        idler.idle(0);
    }
    assert_eq!(idler.stats(), IdleStats { spins: 3, yields: 2, parks: 3 });
    idler.idle(7); // work done: no idle step, backoff restarts
    idler.idle(0);
    assert_eq!(idler.stats(), IdleStats { spins: 4, yields: 2, parks: 3 });

    let mut spin = Idler::new(IdleStrategy::Spin);
    (0..10).for_each(|_| spin.idle(0));
    assert_eq!(spin.stats(), IdleStats { spins: 10, yields: 0, parks: 0 });

    let mut park = Idler::with_park_cap(IdleStrategy::Park, Duration::from_micros(1));
    (0..3).for_each(|_| park.idle(0));
    park.idle(1);
    assert_eq!(park.stats(), IdleStats { spins: 0, yields: 0, parks: 3 });
}

#[test]
fn invoker_mode_starts_no_thread_and_runs_agents_on_the_caller() {
    let _serial = serial();
    let before = engine_threads();
    let cfg = config(|b| b.mode(ThreadingMode::Invoker));
    let (agents, probes) = agents(2, 2);
    let mut engine = Engine::start(&cfg, agents).expect("start");
    assert_eq!(engine_threads(), before, "invoker mode spawns no thread");
    assert_eq!(engine.mode(), ThreadingMode::Invoker);
    assert_eq!((engine.invoke(), engine.invoke(), engine.invoke()), (2, 2, 0));
    let here = thread::current().name().map(str::to_owned);
    assert!(probes.iter().all(|p| *p.thread.lock().unwrap() == here), "agents ran on the invoking thread");
    let stats = engine.stats();
    assert_eq!((stats.len(), stats[0].duty_cycles, stats[0].work_items), (1, 3, 4));
    engine.wake(); // no thread to wake: harmless
    assert_eq!(
        engine.shutdown(Duration::ZERO).expect("shutdown"),
        ShutdownReport { threads_joined: 0, agents_closed: 2 }
    );
    assert!(probes.iter().all(|p| p.closes.load(SeqCst) == 1));
}

/// Panics in its first `do_work`.
struct Bomb(Arc<AtomicBool>);

impl Agent for Bomb {
    fn name(&self) -> &str {
        "bomb"
    }
    fn do_work(&mut self) -> usize {
        panic!("bomb went off");
    }
    fn on_close(&mut self) {
        self.0.store(true, SeqCst);
    }
}

#[test]
fn a_panicking_agent_is_reported_and_the_others_run_on() {
    let _serial = serial();
    let cfg = config(|b| b.threads(1).idle(IdleStrategy::Park));
    let bomb_closed = Arc::new(AtomicBool::new(false));
    let (mut agents, probes) = agents(1, 0);
    agents.insert(0, Box::new(Bomb(Arc::clone(&bomb_closed))));
    let engine = Engine::start(&cfg, agents).expect("start");
    assert!(eventually(|| !engine.failures().is_empty()));
    assert!(eventually(|| engine.stats()[0].agents == 1), "the panicked agent is removed");
    probes[0].pending.store(3, SeqCst);
    engine.wake();
    assert!(eventually(|| engine.stats()[0].work_items == 3), "the thread's other agent keeps working");
    match engine.shutdown(Duration::from_secs(20)) {
        Err(EngineError::AgentPanicked { name, during: "do_work", message }) => {
            assert_eq!((name.as_str(), message.as_str()), ("bomb", "bomb went off"));
        }
        other => panic!("expected AgentPanicked, got {other:?}"),
    }
    assert_eq!(probes[0].closes.load(SeqCst), 1);
    assert!(!bomb_closed.load(SeqCst), "a panicked agent is not closed");
    assert!(eventually(|| engine_threads() == 0), "engine threads left behind");
}

/// Blocks in `do_work` until the test lets it go: a stuck agent.
struct Stuck(Mutex<mpsc::Receiver<()>>);

impl Agent for Stuck {
    fn name(&self) -> &str {
        "stuck"
    }
    fn do_work(&mut self) -> usize {
        let _ = self.0.lock().unwrap().recv();
        0
    }
}

fn stuck_engine() -> (Engine, mpsc::Sender<()>) {
    let (release, blocked) = mpsc::channel();
    let cfg = config(|b| b.threads(1).idle(IdleStrategy::Park));
    let engine = Engine::start(&cfg, vec![Box::new(Stuck(Mutex::new(blocked)))]).expect("start");
    (engine, release)
}

#[test]
fn drop_without_shutdown_does_not_hang() {
    let _serial = serial();
    let (agents, probes) = agents(2, 0);
    drop(Engine::start(&config(|b| b.threads(2).idle(IdleStrategy::Park)), agents).expect("start"));
    assert!(probes.iter().all(|p| p.closes.load(SeqCst) == 1), "drop closes every agent");
    assert!(eventually(|| engine_threads() == 0), "drop joins idle threads");

    let (engine, release) = stuck_engine();
    let (dropped_tx, dropped) = mpsc::channel();
    thread::spawn(move || {
        drop(engine);
        let _ = dropped_tx.send(());
    });
    assert!(dropped.recv_timeout(Duration::from_secs(30)).is_ok(), "drop returns though an agent is stuck");
    drop(release); // the detached thread's agent returns; the thread sees the stop flag and exits
    assert!(eventually(|| engine_threads() == 0), "the detached thread exits once its agent returns");
}

#[test]
fn shutdown_past_its_deadline_reports_the_stuck_thread() {
    let _serial = serial();
    let (engine, release) = stuck_engine();
    assert!(matches!(engine.shutdown(Duration::from_millis(10)), Err(EngineError::ShutdownTimedOut { threads: 1 })));
    drop(release);
    assert!(eventually(|| engine_threads() == 0));
}

#[test]
fn engine_is_send_and_its_waker_is_shareable() {
    fn send<T: Send>() {}
    fn sync<T: Send + Sync + Clone>() {}
    send::<Engine>();
    sync::<Waker>();
}

/// An agent that sleeps for its own events.
struct Sleeper {
    waits: Arc<AtomicUsize>,
    longest: Arc<Mutex<Duration>>,
}

impl Agent for Sleeper {
    fn name(&self) -> &str {
        "sleeper"
    }

    fn do_work(&mut self) -> usize {
        0
    }

    fn wait(&mut self, timeout: Duration) {
        self.waits.fetch_add(1, SeqCst);
        let mut longest = self.longest.lock().unwrap();
        *longest = (*longest).max(timeout);
        drop(longest);
        thread::sleep(timeout.min(Duration::from_millis(1)));
    }

    fn sleeps(&self) -> bool {
        true
    }
}

#[test]
fn an_idle_thread_sleeps_in_its_sleeping_agent_not_in_a_park() {
    let _serial = serial();
    let waits = Arc::new(AtomicUsize::new(0));
    let longest = Arc::new(Mutex::new(Duration::ZERO));
    let cfg = config(|b| b.idle(IdleStrategy::Backoff { spins: 2, yields: 2, park: Duration::from_millis(3) }));
    let agent = Sleeper { waits: Arc::clone(&waits), longest: Arc::clone(&longest) };
    let engine = Engine::start(&cfg, vec![Box::new(agent)]).expect("start");
    assert!(eventually(|| waits.load(SeqCst) >= 3), "the idle thread never slept in the agent");
    let parks = engine.stats()[0].idle.parks;
    assert!(parks >= 3, "each sleep counts as a park: {parks}");
    assert!(*longest.lock().unwrap() <= Duration::from_millis(3), "the backoff bounds each sleep");
    engine.shutdown(Duration::from_secs(5)).expect("shutdown");
}

/// The invoker's timed cycles are one in `INVOKER_DUTY_SAMPLE` whatever
/// the application's rhythm: busy cycles that fall every 16th cycle, at
/// any phase, are timed about as often as any (with `n % 16` they were
/// timed always or never, and the duty histogram of such a loop stayed
/// empty).
#[test]
fn invoker_cycles_are_sampled_whatever_the_rhythm() {
    let period = INVOKER_DUTY_SAMPLE;
    for phase in 0..period {
        let busy = (0..16_000u64).filter(|n| n % period == phase);
        let timed = busy.filter(|n| super::sampled(*n)).count();
        // 1,000 busy cycles: about 62 timed; far from 0 and from 1,000.
        assert!((20..200).contains(&timed), "phase {phase}: {timed} of 1000 timed");
    }
    let all = (0..160_000u64).filter(|n| super::sampled(*n)).count();
    assert!((9_000..11_000).contains(&all), "{all} of 160000 timed");
}
