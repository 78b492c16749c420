//! Is io_uring usable here, with these setup flags, and which operations does
//! the kernel offer? When it is not usable, say why in plain words and name
//! the fix.
//!
//! This module builds rings and reads `/proc` and rlimits; it never submits
//! I/O. `RINGFLOW_TEST_URING_ERRNO` (an errno number, e.g. `1` for EPERM) is
//! read by [`simulated_errno`] only: it makes ring setup fail as if the kernel
//! had returned that errno, so tests can exercise the unavailable path. The
//! config module ignores `RINGFLOW_TEST_*` variables.

use std::fmt;
use std::io;

use io_uring::{opcode, IoUring, Probe};

use crate::config::IoUringSection;

/// The test hook's environment variable (see the module header).
pub const TEST_ERRNO_ENV: &str = "RINGFLOW_TEST_URING_ERRNO";

/// Setup flags the kernel accepted for a ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetupFlags {
    /// IORING_SETUP_SINGLE_ISSUER: one thread submits.
    pub single_issuer: bool,
    /// IORING_SETUP_DEFER_TASKRUN: task work runs only when the ring is entered.
    pub defer_taskrun: bool,
    /// IORING_SETUP_COOP_TASKRUN: task work does not interrupt the thread.
    pub coop_taskrun: bool,
    /// IORING_SETUP_TASKRUN_FLAG: the ring tells user space when task work
    /// waits, so a poller enters the kernel only then. Set whenever
    /// COOP_TASKRUN or DEFER_TASKRUN is.
    pub taskrun_flag: bool,
    /// IORING_SETUP_SQPOLL: a kernel thread polls the submission queue.
    pub sqpoll: bool,
}

impl SetupFlags {
    /// The flags a configuration asks for.
    pub fn from_config(cfg: &IoUringSection) -> Self {
        SetupFlags {
            single_issuer: cfg.single_issuer,
            defer_taskrun: cfg.defer_taskrun,
            coop_taskrun: cfg.coop_taskrun,
            taskrun_flag: cfg.defer_taskrun || cfg.coop_taskrun,
            sqpoll: cfg.sqpoll,
        }
    }

    fn names(&self) -> String {
        let all = [
            ("SINGLE_ISSUER", self.single_issuer),
            ("DEFER_TASKRUN", self.defer_taskrun),
            ("COOP_TASKRUN", self.coop_taskrun),
            ("TASKRUN_FLAG", self.taskrun_flag),
            ("SQPOLL", self.sqpoll),
        ];
        let on: Vec<&str> = all.iter().filter(|(_, on)| *on).map(|(name, _)| *name).collect();
        if on.is_empty() {
            "none".to_owned()
        } else {
            on.join("|")
        }
    }
}

/// What this kernel offers, from `IORING_REGISTER_PROBE`.
///
/// The probe lists opcodes, not per-opcode flags: multishot accept and
/// provided-buffer rings arrived in 5.19 together with `IORING_OP_SOCKET`,
/// multishot recv in 6.0 together with `IORING_OP_SEND_ZC`; those are inferred
/// from the opcode of the same release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Support {
    /// The setup flags the kernel accepted.
    pub setup: SetupFlags,
    /// Multishot accept.
    pub accept_multi: bool,
    /// Multishot receive.
    pub recv_multi: bool,
    /// IORING_OP_SEND_ZC (zero-copy send).
    pub send_zc: bool,
    /// IORING_OP_PROVIDE_BUFFERS.
    pub provide_buffers: bool,
    /// Provided-buffer rings.
    pub buf_ring: bool,
    /// IORING_OP_FUTEX_WAIT.
    pub futex_wait: bool,
}

impl Support {
    pub(crate) fn from_probe(probe: &Probe, setup: SetupFlags) -> Self {
        let socket_op = probe.is_supported(opcode::Socket::CODE);
        let send_zc = probe.is_supported(opcode::SendZc::CODE);
        Support {
            setup,
            accept_multi: probe.is_supported(opcode::AcceptMulti::CODE) && socket_op,
            recv_multi: probe.is_supported(opcode::RecvMulti::CODE) && send_zc,
            send_zc,
            provide_buffers: probe.is_supported(opcode::ProvideBuffers::CODE),
            buf_ring: socket_op,
            futex_wait: probe.is_supported(opcode::FutexWait::CODE),
        }
    }
}

/// Why io_uring cannot be used, with the fix. Shared-memory flows keep working
/// either way; only the network engine needs io_uring.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UringUnavailable {
    /// `kernel.io_uring_disabled` is 1 (only `kernel.io_uring_group`) or 2 (nobody).
    DisabledBySysctl {
        /// The sysctl's value.
        value: u8,
    },
    /// EPERM with the sysctl at 0: a seccomp filter (a container runtime's
    /// default profile) or an LSM forbids `io_uring_setup`.
    Forbidden,
    /// ENOSYS: the kernel predates io_uring (5.1) or was built without it.
    NotInKernel,
    /// ENOMEM: the ring or its buffers do not fit in the locked-memory limit.
    LockedMemory {
        /// The soft `RLIMIT_MEMLOCK`, if it could be read (`None`: unlimited or unknown).
        limit_bytes: Option<u64>,
    },
    /// EINVAL: the kernel rejects this combination of setup flags.
    InvalidFlags {
        /// The flags asked for.
        flags: String,
    },
    /// The kernel lacks an operation the transport needs.
    MissingFeature {
        /// The operation missing.
        what: &'static str,
    },
    /// Anything else, with the step that failed.
    Other {
        /// The step that failed.
        step: &'static str,
        /// The OS error number.
        errno: i32,
    },
}

impl fmt::Display for UringUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UringUnavailable::DisabledBySysctl { value } => write!(
                f,
                "io_uring is disabled by the sysctl kernel.io_uring_disabled = {value} ({}); fix: \
                 `sysctl -w kernel.io_uring_disabled=0` as root{}",
                if *value == 1 { "only members of kernel.io_uring_group may use it" } else { "nobody may use it" },
                if *value == 1 { ", or add this user to the group named by kernel.io_uring_group" } else { "" }
            ),
            UringUnavailable::Forbidden => f.write_str(
                "io_uring_setup is forbidden (EPERM) although kernel.io_uring_disabled is 0: a seccomp \
                 filter (a container's default profile) or a security module blocks it; fix: run the \
                 container with a seccomp profile that allows io_uring_setup, io_uring_enter and \
                 io_uring_register (e.g. docker --security-opt seccomp=<profile>)",
            ),
            UringUnavailable::NotInKernel => f.write_str(
                "this kernel has no io_uring (ENOSYS): it is older than 5.1 or built without \
                 CONFIG_IO_URING; fix: run on a kernel >= 6.0 (multishot recv needs 6.0)",
            ),
            UringUnavailable::LockedMemory { limit_bytes } => {
                write!(f, "io_uring ran out of locked memory (ENOMEM); RLIMIT_MEMLOCK is ")?;
                match limit_bytes {
                    Some(bytes) => write!(f, "{} KiB", bytes / 1024)?,
                    None => f.write_str("unlimited or unknown")?,
                }
                f.write_str(
                    "; fix: raise it (`ulimit -l unlimited` in the shell, `LimitMEMLOCK=infinity` in a \
                     systemd unit, `--ulimit memlock=-1` for docker) or lower io_uring.entries, \
                     io_uring.provided_buffers or io_uring.buffer_size",
                )
            }
            UringUnavailable::InvalidFlags { flags } => write!(
                f,
                "the kernel rejects the io_uring setup flags {flags} (EINVAL); DEFER_TASKRUN needs \
                 SINGLE_ISSUER and kernel 6.1, COOP_TASKRUN 5.19, SINGLE_ISSUER 6.0, and neither \
                 taskrun flag goes with SQPOLL; fix: change io_uring.* in the config"
            ),
            UringUnavailable::MissingFeature { what } => {
                write!(f, "this kernel's io_uring lacks {what}; fix: run on a kernel >= 6.0")
            }
            UringUnavailable::Other { step, errno } => {
                write!(f, "io_uring failed at {step}: {}", io::Error::from_raw_os_error(*errno))
            }
        }
    }
}

impl std::error::Error for UringUnavailable {}

/// The errno the test hook asks for, if `RINGFLOW_TEST_URING_ERRNO` holds a
/// positive number. The only reader of that variable.
pub fn simulated_errno() -> Option<i32> {
    std::env::var(TEST_ERRNO_ENV).ok()?.trim().parse().ok().filter(|e: &i32| *e > 0)
}

/// Can a ring with `cfg`'s setup flags be built here, and what can it do?
/// Honours the test hook (see the module header).
pub fn probe(cfg: &IoUringSection) -> Result<Support, UringUnavailable> {
    probe_with(cfg, simulated_errno())
}

/// [`probe`] with an explicit simulated setup errno instead of the environment.
pub fn probe_with(cfg: &IoUringSection, fake_errno: Option<i32>) -> Result<Support, UringUnavailable> {
    build_ring(cfg, fake_errno).map(|(_, support)| support)
}

/// Builds the ring `cfg` describes and probes its opcodes.
pub(crate) fn build_ring(
    cfg: &IoUringSection,
    fake_errno: Option<i32>,
) -> Result<(IoUring, Support), UringUnavailable> {
    let setup = SetupFlags::from_config(cfg);
    if let Some(errno) = fake_errno {
        return Err(classify(errno, setup));
    }
    let mut builder = IoUring::builder();
    if setup.single_issuer {
        builder.setup_single_issuer();
    }
    if setup.defer_taskrun {
        builder.setup_defer_taskrun();
    }
    if setup.coop_taskrun {
        builder.setup_coop_taskrun();
    }
    if setup.taskrun_flag {
        builder.setup_taskrun_flag();
    }
    if setup.sqpoll {
        let idle_ms = u32::try_from(cfg.sqpoll_idle.as_millis()).unwrap_or(u32::MAX);
        builder.setup_sqpoll(idle_ms);
        if let Some(cpu) = cfg.sqpoll_core {
            builder.setup_sqpoll_cpu(u32::try_from(cpu).unwrap_or(u32::MAX));
        }
    }
    let ring = builder.build(cfg.entries).map_err(|e| classify(e.raw_os_error().unwrap_or(0), setup))?;
    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| UringUnavailable::Other { step: "IORING_REGISTER_PROBE", errno: e.raw_os_error().unwrap_or(0) })?;
    Ok((ring, Support::from_probe(&probe, setup)))
}

/// Maps a setup errno to its cause, reading the sysctl and RLIMIT_MEMLOCK.
pub(crate) fn classify(errno: i32, setup: SetupFlags) -> UringUnavailable {
    classify_from(errno, setup, read_disabled_sysctl(), memlock_limit())
}

/// Pure part of [`classify`], separately testable.
pub(crate) fn classify_from(
    errno: i32,
    setup: SetupFlags,
    sysctl: Option<u8>,
    memlock: Option<u64>,
) -> UringUnavailable {
    match errno {
        libc::EPERM | libc::EACCES => match sysctl {
            Some(value @ (1 | 2)) => UringUnavailable::DisabledBySysctl { value },
            _ => UringUnavailable::Forbidden,
        },
        libc::ENOSYS => UringUnavailable::NotInKernel,
        libc::ENOMEM => UringUnavailable::LockedMemory { limit_bytes: memlock },
        libc::EINVAL => UringUnavailable::InvalidFlags { flags: setup.names() },
        _ => UringUnavailable::Other { step: "io_uring_setup", errno },
    }
}

fn read_disabled_sysctl() -> Option<u8> {
    std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").ok()?.trim().parse().ok()
}

/// The soft RLIMIT_MEMLOCK in bytes; `None` when unlimited or unreadable.
fn memlock_limit() -> Option<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one `rlimit` through a pointer to a live local.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    (rc == 0 && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}
