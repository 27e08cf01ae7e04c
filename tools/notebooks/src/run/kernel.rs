//! One evcxr kernel: running a cell under a time limit and an output cap (the watchdog, which
//! also stops the compilers a cell started), and capturing what the cell printed.

use super::*;

/// One evcxr context (a kernel) with its outputs captured.
pub struct Kernel {
    ctx: evcxr::CommandContext,
    capture: Capture,
    process: Arc<Mutex<std::process::Child>>,
    /// Time to start it (a first tiny compile).
    pub startup: Duration,
}

impl Kernel {
    /// Starts a kernel in the current directory; `path` names the notebook in errors.
    pub fn start(path: &Path) -> Result<Kernel, RunError> {
        let started = Instant::now();
        let (eval, outputs) = evcxr::EvalContext::new().map_err(|e| RunError::Start {
            path: path.to_owned(),
            message: e.to_string().trim().replace('\n', " | "),
        })?;
        let ctx = evcxr::CommandContext::with_eval_context(eval);
        let process = ctx.process_handle();
        Ok(Kernel {
            ctx,
            capture: Capture::start(outputs),
            process,
            startup: started.elapsed(),
        })
    }

    /// Runs `source` as the cell `at`, within `limits`.
    pub fn execute(&mut self, at: &CellRef, source: &str, limits: Limits) -> CellRun {
        self.capture.set_cap(limits.output_cap);
        let t = Instant::now();
        let watchdog = limits
            .timeout
            .map(|limit| Watchdog::arm(limit, &self.process));
        let result = if source.trim().is_empty() {
            Ok(evcxr::EvalOutputs::new())
        } else {
            self.ctx.execute(source)
        };
        let timed_out = watchdog.is_some_and(Watchdog::disarm);
        let duration = t.elapsed();
        let taken = self.capture.settle_and_take();
        let terminated = matches!(result, Err(evcxr::Error::SubprocessTerminated(_)));
        let (outputs, phases, error) = match result {
            Ok(out) => (
                out.content_by_mime_type.into_iter().collect(),
                out.phases
                    .iter()
                    .map(|p| (p.name.clone(), p.duration))
                    .collect(),
                None,
            ),
            Err(e) => (BTreeMap::new(), Vec::new(), Some(render_error(&e))),
        };
        let mut checks = CheckCounts::in_text(&taken.stdout);
        if let Some(text) = outputs.get("text/plain") {
            checks += CheckCounts::in_text(text);
        }
        CellRun {
            at: at.clone(),
            panicked: has_panic(&taken.stderr),
            source: source.to_owned(),
            outputs,
            stdout: taken.stdout,
            stderr: taken.stderr,
            error,
            duration,
            phases,
            checks,
            timed_out,
            terminated,
            truncated: taken.truncated,
        }
    }
}

/// Kills the kernel's process if a cell runs past its limit.
pub(super) struct Watchdog {
    pub(super) done: std::sync::mpsc::Sender<()>,
    pub(super) fired: std::thread::JoinHandle<bool>,
}

impl Watchdog {
    fn arm(limit: Duration, process: &Arc<Mutex<std::process::Child>>) -> Watchdog {
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let process = Arc::clone(process);
        let fired = std::thread::spawn(move || match wait.recv_timeout(limit) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                // The limit covers compiling the cell too: the compilers this process started
                // are killed until the cell is over (evcxr may retry a compile that died), and
                // the kernel's process once evcxr lets go of it (it holds it while compiling).
                let slice = Duration::from_millis(200);
                let mut killed = false;
                loop {
                    kill_compilers();
                    if !killed {
                        if let Ok(mut child) = process.try_lock() {
                            let _ = child.kill();
                            killed = true;
                        }
                    }
                    match wait.recv_timeout(slice) {
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                        _ => break,
                    }
                }
                true
            }
            _ => false,
        });
        Watchdog { done, fired }
    }

    /// Stops the watch; whether it had fired.
    fn disarm(self) -> bool {
        let _ = self.done.send(());
        self.fired.join().unwrap_or(false)
    }
}

/// Kills every `cargo` and `rustc` process descended from this one (the cell's compile that
/// evcxr started), found through `/proc`.
#[cfg(target_os = "linux")]
pub(super) fn kill_compilers() {
    let me = std::process::id();
    // (pid, parent, command name) of every process: `/proc/<pid>/stat` is "pid (comm) S ppid …".
    let procs: Vec<(u32, u32, String)> = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let stat = fs::read_to_string(e.path().join("stat")).ok()?;
            let (head, tail) = stat.rsplit_once(')')?;
            let (pid, comm) = head.split_once(" (")?;
            let ppid = tail.split_whitespace().nth(1)?;
            Some((pid.parse().ok()?, ppid.parse().ok()?, comm.to_owned()))
        })
        .collect();
    let mut ours = std::collections::HashSet::from([me]);
    loop {
        let before = ours.len();
        for (pid, ppid, _) in &procs {
            if ours.contains(ppid) {
                ours.insert(*pid);
            }
        }
        if ours.len() == before {
            break;
        }
    }
    for (pid, _, comm) in &procs {
        if *pid != me && ours.contains(pid) && (comm == "rustc" || comm == "cargo") {
            // SAFETY: kill(2) on a process this one started (its compile).
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub(super) fn kill_compilers() {}

/// Restores the working directory when dropped.
pub(super) struct CwdGuard(PathBuf);

impl CwdGuard {
    pub(super) fn enter(dir: &Path) -> Result<CwdGuard, RunError> {
        let old = std::env::current_dir().map_err(io_error(dir))?;
        std::env::set_current_dir(dir).map_err(io_error(dir))?;
        Ok(CwdGuard(old))
    }
}

impl Drop for CwdGuard {
    fn drop(&mut self) {
        let _ = std::env::set_current_dir(&self.0);
    }
}

/// What a cell printed.
pub(super) struct Taken {
    pub(super) stdout: String,
    pub(super) stderr: String,
    pub(super) truncated: bool,
}

#[derive(Default)]
pub(super) struct Buffers {
    pub(super) stdout: String,
    pub(super) stderr: String,
    pub(super) truncated: bool,
    pub(super) cap: usize,
}

/// Collects the child process's stdout and stderr lines as they come (evcxr waits until stdout
/// is consumed before it returns from a cell, so someone must read it meanwhile), keeping at most
/// the cap of each.
pub(super) struct Capture {
    pub(super) buffers: Arc<Mutex<Buffers>>,
    pub(super) activity: Arc<AtomicU64>,
}

impl Capture {
    fn start(outputs: evcxr::EvalContextOutputs) -> Capture {
        let buffers = Arc::new(Mutex::new(Buffers {
            cap: Limits::default().output_cap,
            ..Buffers::default()
        }));
        let activity = Arc::new(AtomicU64::new(0));
        for (channel, is_stderr) in [(outputs.stdout, false), (outputs.stderr, true)] {
            let buffers = Arc::clone(&buffers);
            let activity = Arc::clone(&activity);
            std::thread::spawn(move || {
                while let Ok(line) = channel.recv() {
                    let mut b = buffers.lock().unwrap_or_else(|e| e.into_inner());
                    let cap = b.cap;
                    let buf = if is_stderr {
                        &mut b.stderr
                    } else {
                        &mut b.stdout
                    };
                    if buf.len() + line.len() < cap {
                        buf.push_str(&line);
                        buf.push('\n');
                    } else {
                        b.truncated = true;
                    }
                    activity.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        Capture { buffers, activity }
    }

    fn set_cap(&self, cap: usize) {
        self.buffers.lock().unwrap_or_else(|e| e.into_inner()).cap = cap;
    }

    /// Waits until no line has arrived for a moment (stderr comes on its own thread, possibly
    /// after the cell returned), then takes what was printed.
    fn settle_and_take(&self) -> Taken {
        const QUIET: Duration = Duration::from_millis(40);
        const MAX: Duration = Duration::from_secs(2);
        let start = Instant::now();
        let mut seen = self.activity.load(Ordering::SeqCst);
        loop {
            std::thread::sleep(QUIET);
            let now = self.activity.load(Ordering::SeqCst);
            if now == seen || start.elapsed() > MAX {
                break;
            }
            seen = now;
        }
        let mut b = self.buffers.lock().unwrap_or_else(|e| e.into_inner());
        Taken {
            stdout: std::mem::take(&mut b.stdout),
            stderr: std::mem::take(&mut b.stderr),
            truncated: std::mem::replace(&mut b.truncated, false),
        }
    }
}
