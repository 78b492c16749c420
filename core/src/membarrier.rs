//! Asymmetric fences across processes: `membarrier(2)`.
//!
//! A ring in [`WakeMode::Membarrier`] spares its publishers a SeqCst fence
//! on every commit; a waiter instead calls [`heavy_barrier`] between
//! announcing itself and re-checking the ring. That forces a full barrier on
//! every running thread of every process registered with
//! `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED` — which is why every process
//! must [`register`] before attaching to such a ring.

use ringflow_ring::WakeMode;
use std::io;
use std::sync::OnceLock;

const CMD_QUERY: libc::c_int = 0;
const CMD_GLOBAL: libc::c_int = 1;
const CMD_GLOBAL_EXPEDITED: libc::c_int = 1 << 1;
const CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_int = 1 << 2;

fn membarrier(cmd: libc::c_int) -> io::Result<libc::c_long> {
    // SAFETY: membarrier takes two integers (cmd, flags) and touches no
    // memory of ours.
    let r = unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_uint) };
    if r < 0 {
        let err = io::Error::last_os_error();
        return Err(io::Error::new(err.kind(), format!("membarrier(cmd {cmd}): {err}")));
    }
    Ok(r)
}

/// Registers this process for global expedited barriers (once; later calls
/// return the first outcome). Fails where the kernel or a seccomp filter
/// does not allow it.
pub fn register() -> Result<(), MembarrierError> {
    static REGISTERED: OnceLock<Result<(), MembarrierError>> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        let syscall = |cmd| move |e: io::Error| MembarrierError::Syscall { cmd, errno: e.raw_os_error().unwrap_or(0) };
        let supported = membarrier(CMD_QUERY).map_err(syscall(CMD_QUERY))?;
        let needed = (CMD_GLOBAL_EXPEDITED | CMD_REGISTER_GLOBAL_EXPEDITED) as libc::c_long;
        if supported & needed != needed {
            return Err(MembarrierError::Unsupported { supported: supported as i64 });
        }
        membarrier(CMD_REGISTER_GLOBAL_EXPEDITED).map(|_| ()).map_err(syscall(CMD_REGISTER_GLOBAL_EXPEDITED))
    })
}

/// Why this process cannot take part in membarrier-based waking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MembarrierError {
    /// The kernel lacks global expedited barriers; `supported` is the
    /// bit set of commands it offers.
    Unsupported {
        /// The commands the kernel offers (`MEMBARRIER_CMD_QUERY`'s mask).
        supported: i64,
    },
    /// `membarrier(cmd)` failed with `errno` (a seccomp filter, a kernel
    /// built without it).
    Syscall {
        /// The membarrier command.
        cmd: i32,
        /// The OS error number.
        errno: i32,
    },
}

impl std::fmt::Display for MembarrierError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MembarrierError::Unsupported { supported } => {
                write!(f, "membarrier: global expedited barriers unsupported (commands {supported:#x})")
            }
            MembarrierError::Syscall { cmd, errno } => {
                write!(f, "membarrier(cmd {cmd}): {}", io::Error::from_raw_os_error(*errno))
            }
        }
    }
}

impl std::error::Error for MembarrierError {}

/// Runs a full memory barrier on every running thread of every registered
/// process (about half a microsecond here): the waiter's side of the
/// asymmetric fence.
pub fn heavy_barrier() -> io::Result<()> {
    membarrier(CMD_GLOBAL_EXPEDITED).map(|_| ())
}

/// A full memory barrier on every running thread of every process, for a
/// waiter whose peer orders its stores with a compiler fence only (the
/// linger handshake, `ringflow_ring::linger`). In membarrier mode (`expedited`:
/// every process of the flow registered) this is [`heavy_barrier`]; else
/// the slow unregistered `MEMBARRIER_CMD_GLOBAL` (a grace period, often
/// milliseconds: for rare paths only). Fails where the kernel (or a
/// seccomp filter, or `nohz_full`) has neither.
pub fn barrier_all(expedited: bool) -> io::Result<()> {
    if expedited {
        return heavy_barrier();
    }
    static GLOBAL: OnceLock<bool> = OnceLock::new();
    let supported =
        *GLOBAL.get_or_init(|| membarrier(CMD_QUERY).is_ok_and(|cmds| cmds & CMD_GLOBAL as libc::c_long != 0));
    if !supported {
        return Err(io::Error::new(io::ErrorKind::Unsupported, "membarrier(MEMBARRIER_CMD_GLOBAL) unsupported"));
    }
    membarrier(CMD_GLOBAL).map(|_| ())
}

/// The wake mode rings created by this process should use: `Membarrier`
/// when this process could register for it, `Fenced` otherwise. A process
/// that attaches to an existing `Membarrier` ring must call [`register`].
pub fn preferred_wake_mode() -> WakeMode {
    match register() {
        Ok(()) => WakeMode::Membarrier,
        Err(_) => WakeMode::Fenced,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unregistered_global_barrier_runs_or_says_why_not() {
        match barrier_all(false) {
            Ok(()) => {}
            Err(e) => assert!(e.to_string().contains("membarrier"), "{e}"),
        }
    }

    #[test]
    fn registers_and_barriers_where_supported() {
        match register() {
            Ok(()) => {
                heavy_barrier().unwrap();
                assert_eq!(preferred_wake_mode(), WakeMode::Membarrier);
            }
            Err(e) => {
                assert!(e.to_string().contains("membarrier"), "{e}");
                assert_eq!(preferred_wake_mode(), WakeMode::Fenced);
            }
        }
    }
}
