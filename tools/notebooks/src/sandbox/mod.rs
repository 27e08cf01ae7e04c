//! Confining a grading kernel: the student's code, and everything it starts, runs in a sandbox
//! that the Linux kernel enforces.
//!
//! # Who does what
//!
//! * The grader (`grade-one`, the parent) builds a [`SandboxSpec`], creates a per-submission
//!   [`Cgroup`] from it, and puts `spec.to_env()` and `cgroup.env()` in the environment of the
//!   evcxr kernel it starts. After grading it reads [`report`] for its notes and drops the
//!   `Cgroup` (which kills whatever is left in it and removes it).
//! * evcxr starts the kernel's process by running this binary again with `EVCXR_IS_RUNTIME`;
//!   [`confine_if_grading`], called first thing in `main`, confines that process before any cell
//!   runs. It is a no-op unless both `EVCXR_IS_RUNTIME` and [`SANDBOX_VAR`] are set.
//!
//! # The process tree
//!
//! ```text
//! evcxr ── supervisor (the pid evcxr spawned; host namespaces, unconfined, runs no student code)
//!            └── init (PID 1 of a new PID namespace; reaps orphans, runs no student code)
//!                  └── runtime (PID 2: returns from confine_if_grading, runs the cells)
//! ```
//!
//! * A new PID namespace so that the student cannot see, signal or ptrace anything outside its own
//!   tree, and so that the whole tree dies with `init`: the kernel kills every process of a PID
//!   namespace when its PID 1 exits. `init` has `PR_SET_PDEATHSIG(SIGKILL)`, so evcxr killing
//!   the pid it spawned (the supervisor) kills `init`, hence everything. The runtime is not PID 1
//!   itself because PID 1 ignores signals it has no handler for (so `abort()` would misbehave)
//!   and must reap orphans.
//! * The supervisor stays outside every namespace and restriction so that it can write the report
//!   file where the student cannot touch it; it exits with the runtime's status (or re-raises the
//!   runtime's fatal signal), so evcxr sees what it would have seen without the sandbox.
//!
//! # Layers (each one enforced by the kernel)
//!
//! | what                          | how                                                            |
//! |-------------------------------|----------------------------------------------------------------|
//! | reads only what it needs      | Landlock (all filesystem rights handled, allow-list of paths)  |
//! | writes only its scratch       | Landlock + a private mount namespace where every mount is read-only (and nosuid) except the scratch folder: Landlock does not cover chmod/chown/utime |
//! | no network                    | new network namespace (only a down loopback) + Landlock TCP bind/connect (ABI ≥ 4) |
//! | no signal/ptrace outside      | PID namespace + Landlock scopes (signals, abstract unix sockets; ABI ≥ 6) |
//! | bounded                       | memory and pids cgroups made by the parent; fallback RLIMIT_DATA (per process); RLIMIT_CORE 0, RLIMIT_FSIZE |
//! | nothing left behind           | PID namespace + pdeathsig; [`Cgroup::kill_all`] as a second net; without a PID namespace init is a subreaper that kills leftovers when the runtime ends |
//! | no way to undo it             | no_new_privs, empty capability bounding set, no capabilities; Landlock forbids mount |
//!
//! When a layer cannot be applied, the sandbox still applies the others, prints a line starting
//! with [`REPORT_PREFIX`] on stderr and records a `not enforced: …` line in the report file
//! (`enforced: …` lines for the others); see [`report`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The environment variable naming the scratch folder: the only place a grading kernel may
/// write (and, with the build folder, sysroot and system folders, read). Its presence turns the
/// sandbox on in the kernel's process.
pub const SANDBOX_VAR: &str = "KTO_LAB_GRADE_SANDBOX";
/// The build folder (evcxr's `EVCXR_TMPDIR`: the compiled cells live there), read + execute.
/// When unset, `EVCXR_TMPDIR` is used.
pub const BUILD_VAR: &str = "KTO_LAB_SANDBOX_BUILD";
/// The Rust sysroot (`rustc --print sysroot`; the cells link to its `libstd-*.so`), read + execute.
pub const SYSROOT_VAR: &str = "KTO_LAB_SANDBOX_SYSROOT";
/// The memory limit in bytes for the whole tree.
pub const MEMORY_VAR: &str = "KTO_LAB_SANDBOX_MEMORY";
/// The limit on processes + threads for the whole tree.
pub const TASKS_VAR: &str = "KTO_LAB_SANDBOX_TASKS";
/// The report file the supervisor writes (outside the scratch folder, so the student cannot
/// forge it). When unset: `<scratch>/.sandbox-report`.
pub const REPORT_VAR: &str = "KTO_LAB_SANDBOX_REPORT";
/// Set by [`Cgroup::env`]: lines `controllers=directory` of the cgroups the kernel joins.
pub const CGROUPS_VAR: &str = "KTO_LAB_SANDBOX_CGROUPS";
/// How every line the sandbox prints on stderr starts.
pub const REPORT_PREFIX: &str = "kto-lab grader: ";

/// The largest file the student's code may write, in bytes (RLIMIT_FSIZE).
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// What a grading kernel may use. The parent builds it, passes it with [`SandboxSpec::to_env`];
/// the kernel's process reads it back with [`SandboxSpec::from_env`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxSpec {
    /// Read, write (no execute): the only writable place.
    pub scratch: PathBuf,
    /// Read + execute: evcxr's build folder (`EVCXR_TMPDIR`), where the cells' dylibs are. Only
    /// its `target/` subfolder when that exists at start (not `src/`, the cells' sources): create
    /// `<build_dir>/target` before starting the kernel.
    pub build_dir: PathBuf,
    /// Read + execute: the Rust toolchain's sysroot; see [`rust_sysroot`].
    pub sysroot: Option<PathBuf>,
    /// Memory for the whole process tree, in bytes.
    pub memory_bytes: u64,
    /// Processes and threads for the whole process tree.
    pub max_tasks: u64,
    /// Where the kernel's supervisor writes what was and was not enforced; see [`report`].
    /// Put it outside `scratch`.
    pub report: PathBuf,
}

impl SandboxSpec {
    /// Default memory limit: 2 GiB.
    pub const DEFAULT_MEMORY: u64 = 2 << 30;
    /// Default limit on processes + threads.
    pub const DEFAULT_TASKS: u64 = 256;

    /// A spec with the default limits and the report in `<scratch>/.sandbox-report` (set
    /// `report` to a place outside `scratch` so that it cannot be forged).
    pub fn new(scratch: &Path, build_dir: &Path, sysroot: Option<&Path>) -> SandboxSpec {
        SandboxSpec {
            scratch: scratch.to_path_buf(),
            build_dir: build_dir.to_path_buf(),
            sysroot: sysroot.map(Path::to_path_buf),
            memory_bytes: Self::DEFAULT_MEMORY,
            max_tasks: Self::DEFAULT_TASKS,
            report: scratch.join(".sandbox-report"),
        }
    }

    /// The environment variables that carry this spec to the kernel's process.
    pub fn to_env(&self) -> Vec<(&'static str, OsString)> {
        let mut env = vec![
            (SANDBOX_VAR, self.scratch.clone().into_os_string()),
            (BUILD_VAR, self.build_dir.clone().into_os_string()),
            (MEMORY_VAR, self.memory_bytes.to_string().into()),
            (TASKS_VAR, self.max_tasks.to_string().into()),
            (REPORT_VAR, self.report.clone().into_os_string()),
        ];
        if let Some(s) = &self.sysroot {
            env.push((SYSROOT_VAR, s.clone().into_os_string()));
        }
        env
    }

    /// The spec in this process's environment: `None` when [`SANDBOX_VAR`] is unset. Missing or
    /// unreadable values fall back to the defaults (an unset build folder to `EVCXR_TMPDIR`).
    pub fn from_env() -> Option<SandboxSpec> {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let scratch = PathBuf::from(var(SANDBOX_VAR)?);
        let build_dir = var(BUILD_VAR)
            .or_else(|| var("EVCXR_TMPDIR"))
            .map(PathBuf::from)
            .unwrap_or_default();
        let number = |k: &str, d: u64| {
            var(k)
                .and_then(|v| v.to_str().and_then(|s| s.trim().parse().ok()))
                .unwrap_or(d)
        };
        Some(SandboxSpec {
            report: var(REPORT_VAR)
                .map(PathBuf::from)
                .unwrap_or_else(|| scratch.join(".sandbox-report")),
            sysroot: var(SYSROOT_VAR).map(PathBuf::from),
            memory_bytes: number(MEMORY_VAR, Self::DEFAULT_MEMORY),
            max_tasks: number(TASKS_VAR, Self::DEFAULT_TASKS),
            scratch,
            build_dir,
        })
    }
}

/// The Rust sysroot, from `$RUSTC --print sysroot` (`rustc` when `RUSTC` is unset): for
/// [`SandboxSpec::sysroot`].
pub fn rust_sysroot() -> Result<PathBuf, String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = std::process::Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", Path::new(&rustc).display()))?;
    if !out.status.success() {
        return Err(format!("rustc --print sysroot: {}", out.status));
    }
    let s = String::from_utf8(out.stdout).map_err(|_| "rustc --print sysroot: not UTF-8")?;
    Ok(PathBuf::from(s.trim()))
}

/// What the sandbox of a kernel enforced and did not, one line each (`enforced: …` or
/// `not enforced: …`), from the report file `path` ([`SandboxSpec::report`]). A missing file
/// gives one `not enforced` line: the kernel never got as far as confining itself.
pub fn report(path: &Path) -> Vec<String> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => text.lines().map(str::to_owned).collect(),
        Ok(_) => vec!["not enforced: the sandbox report is empty".into()],
        Err(e) => vec![format!(
            "not enforced: no sandbox report in {} ({e})",
            path.display()
        )],
    }
}

/// In a grading kernel's process (evcxr's child, with [`SANDBOX_VAR`] set): confine it. Must be
/// called while the process has a single thread (first thing in `main`). Returns in the
/// confined runtime process only; the supervisor and init never return from here. Anywhere
/// else: nothing.
pub fn confine_if_grading() {
    if std::env::var_os("EVCXR_IS_RUNTIME").is_none() {
        return;
    }
    let Some(spec) = SandboxSpec::from_env() else {
        return;
    };
    #[cfg(target_os = "linux")]
    linux::confine(&spec);
    #[cfg(not(target_os = "linux"))]
    {
        let _ = std::fs::write(&spec.report, "not enforced: anything (not Linux)\n");
        eprintln!("{REPORT_PREFIX}not enforced: anything (only Linux can confine a kernel)");
    }
}

mod cgroup;
#[cfg(target_os = "linux")]
mod layers;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
mod sys;

pub use cgroup::Cgroup;
