//! SCM_RIGHTS ancillary data for `sendmsg`/`recvmsg`: a control buffer on
//! the stack, big enough for the kernel's limit of fds per message. It must
//! never allocate (send and recv are on the flow's control path), never read
//! past the control bytes the kernel reported, and never lose a received
//! descriptor: each one becomes an `OwnedFd` at once, so it is closed if the
//! caller offered no slot for it.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Most descriptors one message may carry (the kernel's SCM_MAX_FD).
pub const SCM_MAX_FD: usize = 253;

const FD_LEN: usize = std::mem::size_of::<RawFd>();

/// Control-buffer bytes for a message of `nfds` descriptors.
const fn space_for(nfds: usize) -> usize {
    // SAFETY: CMSG_SPACE is arithmetic on its argument; it reads no memory.
    unsafe { libc::CMSG_SPACE((nfds * FD_LEN) as libc::c_uint) as usize }
}

/// Length of a control-message header with no data (CMSG_LEN(0)).
const fn header_len() -> usize {
    // SAFETY: CMSG_LEN is arithmetic on its argument; it reads no memory.
    unsafe { libc::CMSG_LEN(0) as usize }
}

const BUF_LEN: usize = space_for(SCM_MAX_FD);

/// The control buffer. The alignment lets `cmsghdr`s be read and written in
/// place at the offsets CMSG_FIRSTHDR/CMSG_NXTHDR compute.
#[repr(C, align(8))]
pub(super) struct CmsgBuf([u8; BUF_LEN]);

const _: () = assert!(std::mem::align_of::<libc::cmsghdr>() <= std::mem::align_of::<CmsgBuf>());

impl CmsgBuf {
    pub(super) fn new() -> Self {
        CmsgBuf([0; BUF_LEN])
    }

    /// Points `msg` at one SCM_RIGHTS message carrying `fds`
    /// (1..=SCM_MAX_FD of them; the caller checks).
    pub(super) fn attach_rights(&mut self, msg: &mut libc::msghdr, fds: &[BorrowedFd<'_>]) {
        assert!(!fds.is_empty() && fds.len() <= SCM_MAX_FD, "caller checks the fd count");
        msg.msg_control = self.0.as_mut_ptr().cast();
        msg.msg_controllen = space_for(fds.len()) as _;
        // The buffer is aligned and holds a header plus fds.len() ints, so
        // CMSG_FIRSTHDR is its (non-null) start and CMSG_DATA has room for
        // every fd; the data may be unaligned for an int: write_unaligned.
        // SAFETY: msg_control points to this buffer of msg_controllen bytes.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN((fds.len() * FD_LEN) as libc::c_uint) as _;
            let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
            for (i, fd) in fds.iter().enumerate() {
                data.add(i).write_unaligned(fd.as_raw_fd());
            }
        }
    }

    /// Offers `msg` room for exactly `slots` received descriptors (capped at
    /// SCM_MAX_FD; none means no control buffer at all). Exactly: CMSG_SPACE
    /// rounds up and would make room for one more on 64-bit targets, which
    /// the kernel would fill instead of reporting MSG_CTRUNC.
    pub(super) fn offer(&mut self, msg: &mut libc::msghdr, slots: usize) {
        let slots = slots.min(SCM_MAX_FD);
        if slots == 0 {
            msg.msg_control = std::ptr::null_mut();
            msg.msg_controllen = 0;
        } else {
            msg.msg_control = self.0.as_mut_ptr().cast();
            msg.msg_controllen = (header_len() + slots * FD_LEN) as _;
        }
    }

    /// Takes ownership of every descriptor in the control messages recvmsg
    /// left in this buffer (described by `msg`), storing them in `slots` in
    /// order; any beyond the slots are closed. Call it after every
    /// successful recvmsg on a `msg` set up by `offer`.
    pub(super) fn take_rights(&self, msg: &libc::msghdr, slots: &mut [Option<OwnedFd>]) -> Taken {
        let mut taken = Taken { stored: 0, closed: 0 };
        if msg.msg_control.is_null() {
            return taken;
        }
        let start = self.0.as_ptr() as usize;
        // The kernel shrank msg_controllen to the bytes it wrote.
        // (A cast, not `from`: the field is size_t on glibc, u32 on musl.)
        #[allow(clippy::unnecessary_cast)]
        let end = start + (msg.msg_controllen as usize).min(BUF_LEN);
        // SAFETY: msg_control is this buffer and msg_controllen the length of
        // the control data the kernel wrote there; CMSG_FIRSTHDR returns a
        // header within it or null.
        let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(msg) };
        while !cmsg.is_null() {
            // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR only return aligned headers
            // that lie entirely within msg_controllen bytes of our buffer.
            let (level, kind, len) = unsafe { ((*cmsg).cmsg_level, (*cmsg).cmsg_type, (*cmsg).cmsg_len as usize) };
            if level == libc::SOL_SOCKET && kind == libc::SCM_RIGHTS {
                // SAFETY: as above, `cmsg` is a header inside the buffer.
                let data = unsafe { libc::CMSG_DATA(cmsg) }.cast::<RawFd>();
                // Never trust a length past the bytes actually written.
                let data_len = len.saturating_sub(header_len()).min(end.saturating_sub(data as usize));
                for i in 0..data_len / FD_LEN {
                    // SAFETY: `i` ints from `data` lie within the written
                    // control bytes (clamped above); they may be unaligned.
                    let raw = unsafe { data.add(i).read_unaligned() };
                    // SAFETY: the kernel installed this descriptor in our
                    // table for this message; nothing else owns it.
                    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
                    match slots.get_mut(taken.stored) {
                        Some(slot) => {
                            *slot = Some(fd);
                            taken.stored += 1;
                        }
                        None => {
                            drop(fd);
                            taken.closed += 1;
                        }
                    }
                }
            }
            // SAFETY: `msg` still describes the buffer and `cmsg` is a header
            // within it; CMSG_NXTHDR returns the next one or null.
            cmsg = unsafe { libc::CMSG_NXTHDR(msg, cmsg) };
        }
        taken
    }
}

/// What `take_rights` did with the received descriptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Taken {
    /// Stored in the first slots.
    pub(super) stored: usize,
    /// Closed for want of a slot (the kernel delivered more than offered).
    pub(super) closed: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_sizes_are_pinned() {
        // 64-bit Linux: a 16-byte header, then 253 ints rounded up to 8.
        #[cfg(target_pointer_width = "64")]
        assert_eq!(BUF_LEN, 16 + 1016);
        assert_eq!(space_for(0), header_len().next_multiple_of(std::mem::size_of::<usize>()));
        assert!(space_for(2) >= header_len() + 2 * FD_LEN);
    }
}
