//! The sandbox's process tree: supervisor, PID 1 of the new namespaces, runtime; cgroups
//! joined and rlimits set on the way.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::layers::{drop_capabilities, landlock, mounts};
use super::sys::{close, errno, os_err, pipe, Notes};
use super::{SandboxSpec, CGROUPS_VAR, MAX_FILE_BYTES};

fn set_pdeathsig() -> Result<(), String> {
    // SAFETY: plain prctl.
    if unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    } != 0
    {
        return Err(os_err("PR_SET_PDEATHSIG"));
    }
    Ok(())
}

/// Entry point in the process evcxr spawned. Returns in the runtime only.
pub(super) fn confine(spec: &SandboxSpec) {
    // Without the pipe the layers are still applied; only the report file is missing.
    let [rd, wr] = pipe().unwrap_or([-1, -1]);
    // Held open by the supervisor: init sees it hang up if the supervisor died before
    // init's pdeathsig was set.
    let alive = pipe();
    let notes = Notes { fd: wr };
    let limits = join_cgroups(&notes);
    set_rlimits(&notes, spec, limits);
    // New PID namespace: our next child is its PID 1.
    // SAFETY: unshare(2) with a flag; single-threaded here.
    let pidns = if unsafe { libc::unshare(libc::CLONE_NEWPID) } == 0 {
        notes.ok("PID namespace (cannot see or signal processes outside its own tree)");
        true
    } else {
        notes.missing(&os_err("PID namespace: unshare"));
        false
    };
    // SAFETY: single-threaded; the child only runs this module's code before returning.
    match unsafe { libc::fork() } {
        -1 => {
            notes.missing(&os_err(
                "namespaces, mounts and the process supervisor: fork",
            ));
            close(rd);
            runtime(spec, &notes, false);
        }
        0 => {
            close(rd);
            if let Some([a, b]) = alive {
                close(b);
                let _ = set_pdeathsig();
                // Supervisor gone already: the pdeathsig came too late.
                let mut p = libc::pollfd {
                    fd: a,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                if unsafe { libc::poll(&mut p, 1, 0) } > 0 {
                    // SAFETY: exiting.
                    unsafe { libc::_exit(1) };
                }
                close(a);
            } else {
                let _ = set_pdeathsig();
            }
            // Returns in the runtime only, which has closed `wr`.
            init(spec, &notes, pidns);
        }
        pid => {
            close(wr);
            if let Some([a, _b]) = alive {
                close(a);
            }
            release_stdio();
            supervise(rd, pid, &spec.report)
        }
    }
}

/// Joins the cgroups the parent made; returns (memory limited, tasks limited).
fn join_cgroups(notes: &Notes) -> (bool, bool) {
    let (mut memory, mut pids) = (false, false);
    let list = std::env::var_os(CGROUPS_VAR).unwrap_or_default();
    let pid = std::process::id().to_string();
    for entry in list
        .as_bytes()
        .split(|&b| b == b'\n')
        .filter(|e| !e.is_empty())
    {
        let Some(eq) = entry.iter().position(|&b| b == b'=') else {
            continue;
        };
        let ctls = String::from_utf8_lossy(&entry[..eq]).into_owned();
        let dir = Path::new(std::ffi::OsStr::from_bytes(&entry[eq + 1..]));
        match std::fs::write(dir.join("cgroup.procs"), &pid) {
            Ok(()) => {
                memory |= ctls.split(',').any(|c| c == "memory");
                pids |= ctls.split(',').any(|c| c == "pids");
                notes.ok(&format!("cgroup {ctls} ({})", dir.display()));
            }
            Err(e) => notes.missing(&format!("cgroup {ctls} ({}: {e})", dir.display())),
        }
    }
    (memory, pids)
}

#[cfg(target_env = "gnu")]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type Resource = libc::c_int;

fn setrlimit(res: Resource, v: u64) -> Result<(), String> {
    let r = libc::rlimit {
        rlim_cur: v as libc::rlim_t,
        rlim_max: v as libc::rlim_t,
    };
    // SAFETY: r is a valid rlimit.
    if unsafe { libc::setrlimit(res, &r) } != 0 {
        return Err(os_err("setrlimit"));
    }
    Ok(())
}

fn set_rlimits(notes: &Notes, spec: &SandboxSpec, (memory, pids): (bool, bool)) {
    notes.check("no core dumps", setrlimit(libc::RLIMIT_CORE, 0));
    notes.check(
        &format!("files at most {MAX_FILE_BYTES} bytes"),
        setrlimit(libc::RLIMIT_FSIZE, MAX_FILE_BYTES),
    );
    if memory {
        notes.ok(&format!(
            "memory at most {} bytes for the whole tree",
            spec.memory_bytes
        ));
    } else {
        notes.missing("memory limit for the whole tree (no memory cgroup)");
        notes.check(
            &format!(
                "fallback: data at most {} bytes per process (RLIMIT_DATA)",
                spec.memory_bytes
            ),
            setrlimit(libc::RLIMIT_DATA, spec.memory_bytes),
        );
    }
    if pids {
        notes.ok(&format!(
            "at most {} tasks for the whole tree",
            spec.max_tasks
        ));
    } else {
        // RLIMIT_NPROC does not bind root and counts the user's processes system-wide.
        notes.missing("task limit (no pids cgroup)");
    }
}

/// The supervisor: copies report lines to the report file, then exits like the runtime.
fn supervise(rd: libc::c_int, init: libc::pid_t, report: &Path) -> ! {
    let mut file = std::fs::File::create(report).ok();
    let mut status: Option<libc::c_int> = None;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // SAFETY: chunk is a valid buffer.
        let n = unsafe { libc::read(rd, chunk.as_mut_ptr().cast(), chunk.len()) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n as usize]);
        while let Some(i) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            if let Some(s) = line.strip_prefix(b"status ") {
                status = std::str::from_utf8(&s[..s.len() - 1])
                    .ok()
                    .and_then(|s| s.parse().ok());
            } else if let Some(f) = &mut file {
                use std::io::Write;
                let _ = f.write_all(&line);
                let _ = f.flush();
            }
        }
    }
    drop(file);
    let mut st: libc::c_int = 0;
    // SAFETY: waiting for our own child.
    while unsafe { libc::waitpid(init, &mut st, 0) } < 0 && errno() == libc::EINTR {}
    exit_like(status.unwrap_or(st))
}

fn exit_like(st: libc::c_int) -> ! {
    // SAFETY: restoring the default action and raising the runtime's signal, then exiting.
    unsafe {
        if libc::WIFSIGNALED(st) {
            let sig = libc::WTERMSIG(st);
            libc::signal(sig, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::raise(sig);
            libc::_exit(128 + sig)
        }
        libc::_exit(if libc::WIFEXITED(st) {
            libc::WEXITSTATUS(st)
        } else {
            1
        })
    }
}

/// PID 1 of the new PID namespace (or just a child without it): private network and mounts,
/// then forks the runtime and reaps. Returns only in the runtime.
fn init(spec: &SandboxSpec, notes: &Notes, pidns: bool) {
    // SAFETY: unshare(2) with flags.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } == 0 {
        notes.ok("network namespace (no interface but a down loopback)");
    } else {
        notes.missing(&os_err("network namespace: unshare"));
    }
    let fresh_proc = mounts(spec, notes, pidns);
    // Without a PID namespace, orphans of the tree come to us instead of the system's init,
    // and we kill them when the runtime ends (but not if init itself is killed).
    // SAFETY: plain prctl.
    let subreaper = !pidns && unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } == 0;
    if subreaper {
        notes.ok("fallback: the runtime's leftover descendants are killed when it ends");
    }
    // SAFETY: single-threaded.
    let child = unsafe { libc::fork() };
    if child == 0 {
        runtime(spec, notes, fresh_proc);
        return;
    }
    if child < 0 {
        notes.missing(&os_err("a separate PID 1: fork (the runtime is PID 1)"));
        runtime(spec, notes, fresh_proc);
        return;
    }
    // Hold none of the kernel's pipes (stdio, the judge's socket): only the runtime talks.
    release_stdio();
    loop {
        let mut st: libc::c_int = 0;
        // SAFETY: reaping children.
        let pid = unsafe { libc::waitpid(-1, &mut st, 0) };
        if pid == child {
            if subreaper {
                kill_children();
            }
            notes.line(&format!("status {st}"));
            // The same status as an exit code, for a supervisor without the pipe.
            let code = if libc::WIFEXITED(st) {
                libc::WEXITSTATUS(st)
            } else {
                128 + libc::WTERMSIG(st)
            };
            // SAFETY: exiting; the kernel kills what is left in the namespace.
            unsafe { libc::_exit(code) };
        }
        if pid < 0 && errno() != libc::EINTR {
            // SAFETY: exiting.
            unsafe { libc::_exit(1) };
        }
    }
}

/// As a subreaper outside a PID namespace: SIGKILLs our children (the orphans of the tree
/// come to us) until there are none.
fn kill_children() {
    let me = std::process::id().to_string();
    for _ in 0..1000 {
        let mut any = false;
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid ...
            let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
            if after.split_whitespace().nth(1) == Some(me.as_str()) {
                if let Some(pid) = e.file_name().to_str().and_then(|p| p.parse().ok()) {
                    super::cgroup::kill9(pid);
                    any = true;
                }
            }
        }
        // SAFETY: reaping our children without blocking.
        while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
        if !any {
            return;
        }
    }
}

fn release_stdio() {
    let null = c"/dev/null";
    // SAFETY: open/dup2/close on descriptors of this process.
    unsafe {
        let fd = libc::open(null.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if fd >= 0 {
            for t in 0..3 {
                libc::dup2(fd, t);
            }
            libc::close(fd);
        }
    }
    if let Some(fd) = std::env::var("KTO_LAB_EXAM_FD")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        if fd > 2 {
            close(fd);
        }
    }
}

/// The runtime: pdeathsig, TMPDIR, no capabilities, Landlock. Then the cells run.
fn runtime(spec: &SandboxSpec, notes: &Notes, fresh_proc: bool) {
    let _ = set_pdeathsig();
    // std::env::temp_dir() and tempfile go to the scratch folder.
    std::env::set_var("TMPDIR", &spec.scratch);
    notes.check("no capabilities, empty bounding set", drop_capabilities());
    landlock(spec, notes, fresh_proc);
    close(notes.fd);
}
