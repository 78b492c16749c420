//! `ringflow doctor`: what this host offers ringflow and what to change,
//! item by item. Every check reads the system (procfs, sysfs, a probe
//! ring, a throwaway memfd) and never changes it; a file that cannot be
//! read is reported as unknown, never as a failure of the doctor.
//!
//! A [`Verdict::Blocker`] is something that stops ringflow from working
//! (no memfd: no flows; io_uring unusable: no engine, so no flows between
//! hosts); the command exits non-zero when there is one. A
//! [`Verdict::Advice`] costs latency or throughput, or leaves the engine
//! open to any host (a listening engine without a key); [`Verdict::Info`] is
//! what a person tuning the host wants to know.

use std::fmt;
use std::path::Path;

use crate::config::{EngineConfig, IdleStrategy, NetBackend, ThreadingMode};

/// How an item stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// As ringflow wants it.
    Ok,
    /// Worth knowing; nothing to change.
    Info,
    /// Works, but costs latency or throughput, or leaves the engine open to
    /// strangers: see the fix.
    Advice,
    /// Stops ringflow (or a part of it) from working: see the fix.
    Blocker,
}

impl Verdict {
    /// Lower-case name, as printed and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Info => "info",
            Verdict::Advice => "advice",
            Verdict::Blocker => "blocker",
        }
    }
}

/// One thing the doctor looked at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// Short, stable name (`io_uring`, `memlock`, ...).
    pub name: &'static str,
    /// How much the finding matters.
    pub verdict: Verdict,
    /// What was found.
    pub found: String,
    /// What to do about it, when something should be done.
    pub fix: Option<String>,
}

impl Item {
    fn new(name: &'static str, verdict: Verdict, found: impl Into<String>, fix: Option<String>) -> Item {
        Item { name, verdict, found: found.into(), fix }
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = match self.verdict {
            Verdict::Ok => "ok     ",
            Verdict::Info => "info   ",
            Verdict::Advice => "ADVICE ",
            Verdict::Blocker => "BLOCKER",
        };
        write!(f, "{mark} {:<16} {}", self.name, self.found)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n        {:<16} fix: {fix}", "")?;
        }
        Ok(())
    }
}

/// Everything the doctor found, in a fixed order.
#[derive(Clone, Debug)]
pub struct Report {
    /// The items, in the order they were checked.
    pub items: Vec<Item>,
}

impl Report {
    /// Whether anything blocks ringflow.
    pub fn blocked(&self) -> bool {
        self.items.iter().any(|i| i.verdict == Verdict::Blocker)
    }

    /// One JSON object per item, one per line.
    pub fn to_json_lines(&self) -> String {
        let mut out = String::new();
        for i in &self.items {
            out.push_str(&format!(
                "{{\"item\":{},\"verdict\":{},\"found\":{},\"fix\":{}}}\n",
                crate::json::string(i.name),
                crate::json::string(i.verdict.name()),
                crate::json::string(&i.found),
                i.fix.as_deref().map_or_else(|| "null".to_owned(), crate::json::string)
            ));
        }
        out
    }
}

/// Examines the host for an engine configured as `config`.
pub fn examine(config: &EngineConfig) -> Report {
    let items = vec![
        memfd(),
        io_uring(config),
        memlock(config),
        descriptors(),
        cores(config),
        isolation(),
        governor(),
        huge_pages(),
        virtual_machine(),
        dev_shm(),
        engine_key(config),
    ];
    Report { items }
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

/// Flows live in memfds: without them nothing works.
fn memfd() -> Item {
    let opts = ringflow_shm::SegmentOptions::new("ringflow:doctor", 4096);
    match ringflow_shm::Segment::create(&opts) {
        Ok(_) => Item::new("memfd", Verdict::Ok, "memfd_create, sealing and mapping work", None),
        Err(e) => Item::new(
            "memfd",
            Verdict::Blocker,
            format!("a flow's shared memory cannot be created: {e}"),
            Some("allow memfd_create, fcntl(F_ADD_SEALS) and mmap (a seccomp profile may forbid them)".into()),
        ),
    }
}

/// The engine (flows between hosts) wants io_uring (without it, plain
/// sockets unless `net.backend = "io_uring"`); local flows do not.
fn io_uring(config: &EngineConfig) -> Item {
    match crate::uring::probe(config.io_uring()) {
        Ok(s) => {
            let mut missing = Vec::new();
            for (ok, what) in [
                (s.accept_multi, "multishot accept"),
                (s.recv_multi, "multishot recv"),
                (s.buf_ring, "provided-buffer rings"),
            ] {
                if !ok {
                    missing.push(what);
                }
            }
            let extras = format!(
                "SEND_ZC {}, futex waits {}",
                if s.send_zc { "yes" } else { "no" },
                if s.futex_wait { "yes" } else { "no" }
            );
            if missing.is_empty() {
                let (verdict, fix) = if s.futex_wait {
                    (Verdict::Ok, None)
                } else {
                    (
                        Verdict::Advice,
                        Some("Linux 6.7 or later lets an idle engine sleep until a local flow has work".into()),
                    )
                };
                Item::new(
                    "io_uring",
                    verdict,
                    format!("available; multishot accept/recv, provided buffers, {extras}"),
                    fix,
                )
            } else {
                without_io_uring(
                    config,
                    format!("available but lacks {} ({extras})", missing.join(", ")),
                    "Linux 6.0 or later",
                )
            }
        }
        Err(e) => without_io_uring(config, format!("unavailable: {e}"), "see the cause above"),
    }
}

/// io_uring cannot serve the engine: with `net.backend = "io_uring"` the
/// engine does not start (a blocker); otherwise it drives plain sockets.
fn without_io_uring(config: &EngineConfig, found: String, fix: &str) -> Item {
    if config.net().backend == NetBackend::IoUring {
        let fix = format!("{fix}; or net.backend = \"auto\" for plain sockets (flows on one host work either way)");
        Item::new("io_uring", Verdict::Blocker, format!("{found}: the engine cannot run"), Some(fix))
    } else {
        Item::new(
            "io_uring",
            Verdict::Advice,
            format!("{found}: the engine drives plain sockets instead (slower; flows on one host are unaffected)"),
            Some(format!("{fix}, to let the engine use io_uring")),
        )
    }
}

/// Provided and registered buffers and the rings count against RLIMIT_MEMLOCK.
fn memlock(config: &EngineConfig) -> Item {
    let u = config.io_uring();
    let threads = if config.engine().mode == ThreadingMode::Invoker { 1 } else { config.engine().threads };
    // Registered buffers exist only with SEND_ZC (see `TcpDriver::new`).
    // The most the engine could register (if the kernel has SEND_ZC).
    let registered = u.send_buffers_to_register(true);
    let per_thread = (u64::from(u.provided_buffers) + u64::from(registered)) * u.buffer_size as u64;
    let need = per_thread * threads as u64;
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass, nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return Item::new("memlock", Verdict::Info, "RLIMIT_MEMLOCK could not be read", None);
    }
    let show = |v: u64| if v == libc::RLIM_INFINITY { "unlimited".to_owned() } else { format!("{} KiB", v / 1024) };
    let found = format!("limit {} (soft), engine buffers need about {} KiB", show(lim.rlim_cur), need / 1024);
    if lim.rlim_cur != libc::RLIM_INFINITY && lim.rlim_cur < need {
        Item::new(
            "memlock",
            Verdict::Advice,
            found,
            Some(format!(
                "raise it (ulimit -l {} or LimitMEMLOCK= in a unit); recent kernels charge io_uring memory to the cgroup instead",
                need / 1024 * 2
            )),
        )
    } else {
        Item::new("memlock", Verdict::Ok, found, None)
    }
}

/// Descriptors a flow end holds: its control socket, which also carries
/// its readiness signals (its memory's memfd is closed once mapped). A
/// `Flow::pair` holds two. An end whose application polls it through
/// `as_raw_fd` holds [`FDS_PER_POLLED_END`] instead.
pub const FDS_PER_FLOW_END: u64 = 1;
/// Descriptors of a flow end polled through `as_raw_fd`: its control
/// socket, and the epoll instance and eventfd made on the first call.
pub const FDS_PER_POLLED_END: u64 = 3;
/// The descriptor limit the doctor recommends: room for 65,000 flow ends,
/// or 21,000 polled through `as_raw_fd` (a server with 10,000 clients and
/// room to spare, either way).
pub const RECOMMENDED_NOFILE: u64 = 65_536;

/// RLIMIT_NOFILE against the descriptors flows hold: the limit caps how
/// many flows one process can have open.
fn descriptors() -> Item {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass, nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Item::new("descriptors", Verdict::Info, "RLIMIT_NOFILE could not be read", None);
    }
    let show = |v: u64| if v == libc::RLIM_INFINITY { "unlimited".to_owned() } else { v.to_string() };
    let found = format!(
        "limit {} (soft), {} (hard): room for about {} flow ends ({FDS_PER_FLOW_END} descriptor each; \
         {} polled through as_raw_fd, {FDS_PER_POLLED_END} each)",
        show(lim.rlim_cur),
        show(lim.rlim_max),
        lim.rlim_cur / FDS_PER_FLOW_END,
        lim.rlim_cur / FDS_PER_POLLED_END
    );
    if lim.rlim_cur >= RECOMMENDED_NOFILE {
        return Item::new("descriptors", Verdict::Ok, found, None);
    }
    let fix = if lim.rlim_max >= RECOMMENDED_NOFILE {
        format!(
            "a process may raise its soft limit up to the hard one itself (setrlimit), or start it with \
             ulimit -n {RECOMMENDED_NOFILE} (LimitNOFILE={RECOMMENDED_NOFILE} in a unit)"
        )
    } else {
        format!(
            "raise the hard limit to {RECOMMENDED_NOFILE} or more (LimitNOFILE={RECOMMENDED_NOFILE} in a unit, \
             nofile in /etc/security/limits.conf) for up to {} flow ends",
            RECOMMENDED_NOFILE / FDS_PER_FLOW_END
        )
    };
    Item::new("descriptors", Verdict::Advice, found, Some(fix))
}

/// Engine threads and pinned cores against the cores there are.
fn cores(config: &EngineConfig) -> Item {
    let online = std::thread::available_parallelism().map_or(0, |n| n.get());
    let e = config.engine();
    let missing: Vec<usize> =
        e.cores.iter().copied().filter(|&c| !Path::new(&format!("/sys/devices/system/cpu/cpu{c}")).exists()).collect();
    let spinning = e.mode == ThreadingMode::Dedicated && matches!(e.idle, IdleStrategy::Spin);
    let found = format!(
        "{online} CPUs usable; engine: {} mode, {} thread(s), cores {:?}, idle {}",
        e.mode.name(),
        e.threads,
        e.cores,
        e.idle.name()
    );
    if !missing.is_empty() {
        return Item::new(
            "cores",
            Verdict::Blocker,
            found,
            Some(format!("engine.cores names CPUs this host does not have: {missing:?}")),
        );
    }
    if spinning && e.threads >= online {
        return Item::new(
            "cores",
            Verdict::Advice,
            found,
            Some(
                "spinning engine threads on every CPU starve the application: use idle = \"backoff\" or fewer threads"
                    .into(),
            ),
        );
    }
    Item::new("cores", Verdict::Ok, found, None)
}

/// isolcpus / nohz_full: cores the scheduler and the tick leave alone.
fn isolation() -> Item {
    let isolated = read("/sys/devices/system/cpu/isolated").unwrap_or_default();
    let nohz = read("/sys/devices/system/cpu/nohz_full").unwrap_or_default();
    let none = |s: &str| s.is_empty() || s == "(null)";
    let found = format!(
        "isolated CPUs: {}; nohz_full: {}",
        if none(&isolated) { "none" } else { &isolated },
        if none(&nohz) { "none" } else { &nohz }
    );
    if none(&isolated) {
        Item::new(
            "isolation",
            Verdict::Info,
            found,
            Some(
                "for the lowest tail, boot with isolcpus=N nohz_full=N and pin the engine there (engine.cores)".into(),
            ),
        )
    } else {
        Item::new("isolation", Verdict::Ok, found, None)
    }
}

/// The CPU frequency governor: `performance` keeps cores from clocking down.
fn governor() -> Item {
    let govs: Vec<String> = (0..1024)
        .map_while(|c| {
            let dir = format!("/sys/devices/system/cpu/cpu{c}");
            Path::new(&dir).exists().then(|| read(&format!("{dir}/cpufreq/scaling_governor")))
        })
        .flatten()
        .collect();
    if govs.is_empty() {
        return Item::new("governor", Verdict::Info, "no cpufreq here (a VM, or fixed frequency)", None);
    }
    let mut kinds = govs.clone();
    kinds.sort();
    kinds.dedup();
    let found = format!("scaling_governor: {}", kinds.join(", "));
    if kinds.iter().all(|g| g == "performance") {
        Item::new("governor", Verdict::Ok, found, None)
    } else {
        Item::new(
            "governor",
            Verdict::Advice,
            found,
            Some("cpupower frequency-set -g performance (a clocked-down core adds latency to every wake-up)".into()),
        )
    }
}

/// Transparent and reserved huge pages (for caller-supplied flow memory).
fn huge_pages() -> Item {
    let thp = read("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_else(|| "unknown".into());
    let shmem = read("/sys/kernel/mm/transparent_hugepage/shmem_enabled").unwrap_or_else(|| "unknown".into());
    let reserved = read("/proc/meminfo")
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("HugePages_Total:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    Item::new(
        "huge_pages",
        Verdict::Info,
        format!("THP {thp}; THP for shared memory {shmem}; reserved huge pages {reserved}"),
        (reserved == "0").then(|| {
            "to put flows on huge pages (FlowOptions::memory with HugePages::Require), reserve some: sysctl vm.nr_hugepages=N"
                .to_owned()
        }),
    )
}

/// A VM pays much more per wake-up (an IPI exits to the hypervisor).
fn virtual_machine() -> Item {
    let hypervisor =
        read("/proc/cpuinfo").is_some_and(|c| c.lines().any(|l| l.starts_with("flags") && l.contains(" hypervisor")));
    let vendor = read("/sys/class/dmi/id/sys_vendor").unwrap_or_default();
    if hypervisor {
        Item::new(
            "virtualization",
            Verdict::Info,
            format!("running in a VM ({})", if vendor.is_empty() { "vendor unknown" } else { &vendor }),
            Some("wake-ups cost tens of microseconds here: prefer spinning (a flow's spin time, engine idle) where a core is free".into()),
        )
    } else {
        Item::new("virtualization", Verdict::Ok, "bare metal (no hypervisor flag)", None)
    }
}

/// /dev/shm: ringflow needs none (memfds), but other IPC libraries do.
fn dev_shm() -> Item {
    let mut st: libc::statvfs = zeroed_statvfs();
    let path = c"/dev/shm";
    // SAFETY: statvfs writes into `st`; the path is a valid C string.
    let ok = unsafe { libc::statvfs(path.as_ptr(), &mut st) } == 0;
    if !ok {
        return Item::new(
            "dev_shm",
            Verdict::Info,
            "/dev/shm is absent (ringflow does not use it: flows are memfds)",
            None,
        );
    }
    // (u64 fields on this target.)
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    let size = st.f_blocks.saturating_mul(st.f_frsize);
    Item::new(
        "dev_shm",
        Verdict::Info,
        format!(
            "/dev/shm {} MiB free of {} MiB (not used by ringflow: flows are memfds, gone with their last user)",
            free >> 20,
            size >> 20
        ),
        None,
    )
}

/// Who may talk to the engine: its key (`net.key_file`), and whether it
/// listens beyond loopback without one.
fn engine_key(config: &EngineConfig) -> Item {
    let net = config.net();
    if let Some(path) = &net.key_file {
        return match crate::remote::load_key_file(path) {
            Ok(key) => Item::new(
                "engine_key",
                Verdict::Ok,
                format!("{} ({key:?}, owner only): engines prove it to each other in the hello", path.display()),
                None,
            ),
            Err(e) => Item::new(
                "engine_key",
                Verdict::Blocker,
                format!("{e}; an engine with this configuration does not start"),
                Some("fix the key file as said, or unset net.key_file".to_owned()),
            ),
        };
    }
    let Some(listen) = &net.listen else {
        return Item::new("engine_key", Verdict::Info, "no key (net.key_file); the engine listens nowhere", None);
    };
    use std::net::ToSocketAddrs as _;
    let loopback_only = (listen.host(), listen.port())
        .to_socket_addrs()
        .is_ok_and(|addrs| addrs.collect::<Vec<_>>().iter().all(|a| a.ip().is_loopback()));
    if loopback_only {
        return Item::new(
            "engine_key",
            Verdict::Info,
            format!("no key (net.key_file); the engine listens on {listen}, loopback only"),
            None,
        );
    }
    Item::new(
        "engine_key",
        Verdict::Advice,
        format!(
            "the engine listens on {listen}, beyond loopback, without a key (net.key_file): any host that reaches \
             the port can talk to it"
        ),
        Some(
            "make a key (`head -c 64 /dev/urandom > /etc/ringflow/key && chmod 600 /etc/ringflow/key`), copy it \
             to every engine that may talk to this one, and set net.key_file"
                .to_owned(),
        ),
    )
}

fn zeroed_statvfs() -> libc::statvfs {
    // SAFETY: statvfs is a plain C struct of integers; all-zero is valid.
    unsafe { std::mem::zeroed() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_covers_every_item_and_agrees_with_the_probe() {
        let config = EngineConfig::default();
        let report = examine(&config);
        let names: Vec<&str> = report.items.iter().map(|i| i.name).collect();
        assert_eq!(
            names,
            [
                "memfd",
                "io_uring",
                "memlock",
                "descriptors",
                "cores",
                "isolation",
                "governor",
                "huge_pages",
                "virtualization",
                "dev_shm",
                "engine_key"
            ]
        );
        let uring = &report.items[1];
        let probed = crate::uring::probe(config.io_uring());
        // The default backend falls back to plain sockets: never a blocker.
        assert_ne!(uring.verdict, Verdict::Blocker, "{uring}");
        assert!(probed.is_ok() || uring.verdict == Verdict::Advice, "{uring}");
        assert!(
            report.items.iter().all(|i| i.verdict != Verdict::Blocker || i.fix.is_some()),
            "a blocker names its fix"
        );
        for line in report.to_json_lines().lines() {
            assert!(line.starts_with("{\"item\":\"") && line.ends_with('}'), "{line}");
        }
    }

    #[test]
    fn a_listening_engine_without_a_key_is_flagged() {
        let key_item = |c: &EngineConfig| engine_key(c);
        let nowhere = EngineConfig::default();
        assert_eq!(key_item(&nowhere).verdict, Verdict::Info);
        let open = EngineConfig::builder().listen(Some("0.0.0.0:7070")).build().unwrap();
        let item = key_item(&open);
        assert_eq!(item.verdict, Verdict::Advice, "{item}");
        assert!(item.fix.as_deref().is_some_and(|f| f.contains("net.key_file")), "{item}");
        let loopback = EngineConfig::builder().listen(Some("127.0.0.1:7070")).build().unwrap();
        assert_eq!(key_item(&loopback).verdict, Verdict::Info);

        let dir = ringflow_testkit::temp_dir("doctor-key");
        let path = dir.path().join("key");
        std::fs::write(&path, [3u8; 48]).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let keyed = EngineConfig::builder().listen(Some("0.0.0.0:7070")).key_file(Some(&path)).build().unwrap();
        assert_eq!(key_item(&keyed).verdict, Verdict::Ok, "{}", key_item(&keyed));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let item = key_item(&keyed);
        assert_eq!(item.verdict, Verdict::Blocker, "{item}");
        assert!(item.found.contains("0644"), "{item}");
    }
}
