//! The few operating-system calls the standard library does not wrap.
//!
//! This is the only module allowed `unsafe`: each block is one libc call on values we own.

/// Disables core dumps (RLIMIT_CORE = 0) and, on Linux, marks the process non-dumpable,
/// which also stops other processes of the same user from attaching a debugger to read
/// the passphrase out of memory. Failures are ignored: this is defence in depth.
#[allow(unsafe_code)]
pub fn harden_process() {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads a valid, initialised rlimit struct that outlives the call.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &zero);
    }
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) takes integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

/// The width of the terminal on stdout, if stdout is one.
#[allow(unsafe_code)]
pub fn terminal_width() -> Option<usize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into the struct we own; fd 1 may be anything,
    // and a non-terminal only makes the call fail.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_col > 0).then_some(ws.ws_col as usize)
}
