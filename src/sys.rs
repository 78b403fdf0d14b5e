//! The few operating-system calls the standard library does not wrap.
//!
//! This is the only module allowed `unsafe`: each block is one libc call on values we own.
//! The session agent (src/agent.rs) uses the credential, session and memory-locking calls.

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

/// Asks glibc's allocator to serve large buffers from its heap and keep freed memory for
/// reuse, rather than mapping fresh pages for each one and unmapping them on free: a
/// command on a large vault allocates several buffers the size of the file one after the
/// other, and fresh pages cost a page fault each (a fifth of `revoke`'s time at 100,000
/// keys). Freed buffers holding secrets are wiped before they are freed, as always. For
/// one-shot commands: a long-running process would keep its peak.
#[allow(unsafe_code)]
pub fn reuse_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes two integers and only adjusts allocator parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 512 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// Hands memory freed after a reload back to the system (glibc keeps freed heap memory for
/// reuse, per thread arena): what the verifier crate's file watcher does, for the store
/// follower of `serve` and `follow`.
#[allow(unsafe_code)]
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions; it only returns free memory of the
    // allocator's arenas to the kernel and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
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

/// The effective user id of this process.
#[allow(unsafe_code)]
pub fn euid() -> u32 {
    // SAFETY: geteuid takes no arguments and cannot fail.
    unsafe { libc::geteuid() }
}

/// The user id of the process at the other end of a connected Unix socket (SO_PEERCRED),
/// as the kernel recorded it when the connection was made: the peer cannot lie about it.
///
/// # Errors
/// The `getsockopt` error.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn peer_uid(sock: &std::os::unix::net::UnixStream) -> std::io::Result<u32> {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into the ucred we own and updates
    // `len`; the fd is borrowed from a live socket for the duration of the call.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if len as usize != std::mem::size_of::<libc::ucred>() {
        return Err(std::io::Error::other("short SO_PEERCRED answer"));
    }
    Ok(cred.uid)
}

/// Starts a new session (setsid), so the process has no controlling terminal and does not
/// receive the terminal's hang-up. Fails only for a process-group leader.
#[allow(unsafe_code)]
pub fn new_session() -> std::io::Result<()> {
    // SAFETY: setsid takes no arguments.
    if unsafe { libc::setsid() } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Locks the pages holding `buf` into memory, so they are never written to swap.
///
/// # Errors
/// The `mlock` error (typically EPERM or ENOMEM under a small RLIMIT_MEMLOCK).
#[allow(unsafe_code)]
pub fn lock_memory(buf: &[u8]) -> std::io::Result<()> {
    if buf.is_empty() {
        return Ok(());
    }
    // SAFETY: mlock only changes the paging of the pages spanning a valid, live slice;
    // it reads and writes no memory.
    if unsafe { libc::mlock(buf.as_ptr().cast(), buf.len()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Points standard input, output and error at /dev/null, so a detached process holds no
/// pipe or terminal of the process that started it.
///
/// # Errors
/// Opening /dev/null or `dup2`.
#[allow(unsafe_code)]
pub fn stdio_to_null() -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for fd in [libc::STDIN_FILENO, libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        // SAFETY: dup2 between a descriptor we own (kept open by `null`) and a standard
        // descriptor number; Rust's std handles re-read the fd number on every use.
        if unsafe { libc::dup2(null.as_raw_fd(), fd) } == -1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Closes every descriptor above standard error that this process inherited, so a
/// long-lived detached process keeps no pipe of its ancestors open (a caller waiting for
/// that pipe's end would wait for the whole session). Call it first thing, before this
/// process opens anything it means to keep.
#[allow(unsafe_code)]
pub fn close_inherited_fds() {
    let fds: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&fd| fd > 2)
            .collect(),
        // Without /proc, the common range.
        Err(_) => (3..1024).collect(),
    };
    for fd in fds {
        // SAFETY: at this point nothing in this process owns a descriptor above 2 (the
        // directory listing above is closed already; closing its number again only fails
        // with EBADF), so no Rust object is left holding a closed descriptor.
        unsafe {
            libc::close(fd);
        }
    }
}
