//! The per-submission cgroup the grader makes (parent side): memory and task limits, and a
//! last net that kills whatever is left.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::{SandboxSpec, CGROUPS_VAR};

/// A per-submission cgroup (parent side): memory and task limits for the whole tree of a
/// kernel, and a way to kill all of it. cgroup v1 (separate `memory` and `pids` hierarchies) or
/// v2 (a child of the grader's own cgroup; the controllers must be enabled there, which this
/// tries). Dropping it kills what is left in it and removes it.
#[derive(Debug)]
pub struct Cgroup {
    /// (controllers, directory)
    dirs: Vec<(String, PathBuf)>,
    missing: Vec<String>,
}

impl Cgroup {
    /// Creates `kto-lab-<name>` with `spec`'s limits. `Err` when no cgroup could be made at all;
    /// limits that could not be set are in [`Cgroup::missing`].
    pub fn create(name: &str, spec: &SandboxSpec) -> Result<Cgroup, String> {
        let name: String = name
            .chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
                _ => '_',
            })
            .collect();
        let name = format!("kto-lab-{name}");
        let root = Path::new("/sys/fs/cgroup");
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        // The grader's own cgroup for `controller` ("" for v2), when it exists under our mount.
        let own_path = |controller: &str| -> Option<PathBuf> {
            own.lines().find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, ctl, path) = (f.next()?, f.next()?, f.next()?);
                let hit = if controller.is_empty() {
                    ctl.is_empty()
                } else {
                    ctl.split(',').any(|c| c == controller)
                };
                hit.then(|| PathBuf::from(path.trim_start_matches('/')))
            })
        };
        let mut cg = Cgroup {
            dirs: Vec::new(),
            missing: Vec::new(),
        };
        if root.join("cgroup.controllers").exists() {
            // v2: a child of our own cgroup, with the controllers enabled for children.
            let base = own_path("")
                .map(|p| root.join(p))
                .filter(|p| p.is_dir())
                .unwrap_or_else(|| root.to_path_buf());
            let _ = std::fs::write(base.join("cgroup.subtree_control"), "+memory +pids");
            let dir = base.join(&name);
            make_dir(&dir)?;
            let mut ctls = Vec::new();
            if write_file(&dir.join("memory.max"), spec.memory_bytes).is_ok() {
                let _ = write_file(&dir.join("memory.swap.max"), 0);
                ctls.push("memory");
            } else {
                cg.missing.push(format!(
                    "memory cgroup (cannot enable the memory controller in {}/cgroup.subtree_control: \
                     run the grader in a delegated cgroup of its own, e.g. systemd-run --scope -p Delegate=yes)",
                    base.display()
                ));
            }
            if write_file(&dir.join("pids.max"), spec.max_tasks).is_ok() {
                ctls.push("pids");
            } else {
                cg.missing.push(format!(
                    "pids cgroup (no pids controller in {})",
                    base.display()
                ));
            }
            // Even without controllers it is joined: cgroup.kill still kills the whole tree.
            cg.dirs.push((
                if ctls.is_empty() {
                    "none".into()
                } else {
                    ctls.join(",")
                },
                dir,
            ));
        } else {
            // v1: one hierarchy per controller.
            for (ctl, file, limit) in [
                ("memory", "memory.limit_in_bytes", spec.memory_bytes),
                ("pids", "pids.max", spec.max_tasks),
            ] {
                let mount = root.join(ctl);
                if !mount.is_dir() {
                    cg.missing
                        .push(format!("{ctl} cgroup (no {} hierarchy)", mount.display()));
                    continue;
                }
                let base = own_path(ctl)
                    .map(|p| mount.join(p))
                    .filter(|p| p.is_dir())
                    .unwrap_or(mount);
                let dir = base.join(&name);
                let set = make_dir(&dir).and_then(|()| {
                    write_file(&dir.join(file), limit)
                        .map_err(|e| format!("{}: {e}", dir.join(file).display()))
                });
                match set {
                    Ok(()) => {
                        if ctl == "memory" {
                            // Also bound swap where the kernel accounts it.
                            let _ = write_file(&dir.join("memory.memsw.limit_in_bytes"), limit);
                        }
                        cg.dirs.push((ctl.to_owned(), dir));
                    }
                    Err(e) => {
                        let _ = std::fs::remove_dir(&dir);
                        cg.missing.push(format!("{ctl} cgroup ({e})"));
                    }
                }
            }
        }
        if cg.dirs.is_empty() {
            return Err(cg.missing.join("; "));
        }
        Ok(cg)
    }

    /// The environment variable telling the kernel's process which cgroups to join.
    pub fn env(&self) -> (&'static str, OsString) {
        let mut v = OsString::new();
        for (ctls, dir) in &self.dirs {
            if !v.is_empty() {
                v.push("\n");
            }
            v.push(format!("{ctls}="));
            v.push(dir);
        }
        (CGROUPS_VAR, v)
    }

    /// The limits that could not be set up (each "what (why)").
    pub fn missing(&self) -> &[String] {
        &self.missing
    }

    /// The cgroup directories (for diagnostics).
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(|(_, d)| d.as_path())
    }

    /// SIGKILLs every process in the cgroup (v2: `cgroup.kill`; v1: each pid in `cgroup.procs`,
    /// again until none is left or about a second has passed). True when it is empty.
    pub fn kill_all(&self) -> bool {
        for (_, dir) in &self.dirs {
            let _ = std::fs::write(dir.join("cgroup.kill"), "1");
        }
        for _ in 0..100 {
            let mut any = false;
            for (_, dir) in &self.dirs {
                let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    any = true;
                    kill9(pid);
                }
            }
            if !any {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        false
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        self.kill_all();
        for (_, dir) in &self.dirs {
            for _ in 0..100 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

fn make_dir(dir: &Path) -> Result<(), String> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("{}: {e}", dir.display())),
    }
}

fn write_file(path: &Path, value: u64) -> std::io::Result<()> {
    std::fs::write(path, value.to_string())
}

#[cfg(target_os = "linux")]
pub(super) fn kill9(pid: i32) {
    if pid > 0 {
        // SAFETY: kill(2) has no memory effects.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

#[cfg(not(target_os = "linux"))]
pub(super) fn kill9(_pid: i32) {}
