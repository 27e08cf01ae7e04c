//! Running the plan: one kernel, the cells in order, and for each check cell a judge thread
//! that runs the real check here and asks the student's kernel, over a Unix socket, only for
//! what its functions return.

use super::*;

pub(super) fn run_plan(
    cells: &[PlanCell],
    solution_path: &Path,
    settings: &Settings,
) -> Result<(SeenByExercise, Vec<String>), GradeError> {
    // The judge's end of the socket and the student's end, which the kernel's process (and
    // the one evcxr starts after a crash) inherits by number.
    let (judge_end, student_end) = socket_pair()?;
    std::env::set_var(exam::EXAM_FD_VAR, student_end.as_raw_fd().to_string());
    let mut kernel = Kernel::start(solution_path)?;
    let limits = Limits {
        timeout: Some(settings.timeout),
        output_cap: settings.output_cap,
    };
    // The judge's hidden tests draw from this run's seed, in this process only.
    kto_lab::checks::grading::set_hidden_seed(settings.seed);
    let mut seen: Vec<(String, Seen)> = Vec::new();
    let mut notes = Vec::new();
    let entry = |seen: &mut Vec<(String, Seen)>, id: &str| -> usize {
        match seen.iter().position(|(i, _)| i == id) {
            Some(p) => p,
            None => {
                seen.push((id.to_owned(), Seen::default()));
                seen.len() - 1
            }
        }
    };
    for (n, cell) in cells.iter().enumerate() {
        let cell_limits = if cell.role == Role::Dep {
            Limits {
                timeout: None,
                ..limits
            }
        } else {
            limits
        };
        let judging = match &cell.role {
            Role::Check(id) => Some(Judging::start(id.clone(), &judge_end, settings.timeout)?),
            _ => None,
        };
        let run = kernel.execute(&cell.at, &cell.source, cell_limits);
        let verdict = judging.map(Judging::finish);
        if run.truncated {
            notes.push(format!("{}: output over the cap was dropped", cell.at));
        }
        let terminated = run.terminated;
        match &cell.role {
            Role::Answer(id) => {
                let i = entry(&mut seen, id);
                seen[i].1.answer = Some(run);
            }
            Role::Check(id) => {
                let i = entry(&mut seen, id);
                let verdict = verdict
                    .unwrap_or_else(|| Err(JudgeError::NotReady("the judge did not run".into())));
                seen[i].1.check = Some((run, verdict));
            }
            Role::Dep | Role::Setup => {
                if let Some(e) = &run.error {
                    notes.push(format!(
                        "{}: a solution cell failed: {}",
                        cell.at,
                        e.lines().next().unwrap_or("")
                    ));
                }
            }
        }
        if terminated {
            // Every variable is gone: run the setup cells before the next cell again.
            notes.push(format!(
                "{}: the kernel was restarted and the notebook's setup cells ran again",
                cell.at
            ));
            for earlier in &cells[..=n] {
                if earlier.role == Role::Setup {
                    kernel.execute(&earlier.at, &earlier.source, limits);
                }
            }
        }
    }
    drop(kernel);
    drop(student_end);
    Ok((seen, notes))
}

/// A Unix socket pair: the judge's end, and the student's end without close-on-exec (so the
/// kernel's process inherits it).
pub(super) fn socket_pair() -> Result<(UnixStream, UnixStream), GradeError> {
    let (judge, student) = UnixStream::pair().map_err(socket_error)?;
    // SAFETY: F_SETFD on a descriptor we own; clearing FD_CLOEXEC has no memory effects.
    if unsafe { libc::fcntl(student.as_raw_fd(), libc::F_SETFD, 0) } != 0 {
        return Err(socket_error(std::io::Error::last_os_error()));
    }
    Ok((judge, student))
}

/// The judge's end of the socket for one check cell: a read waits in short slices until data
/// comes, the cell is over, or its time limit has passed (then `TimedOut`).
pub(super) struct Interruptible {
    pub(super) stream: UnixStream,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) deadline: std::time::Instant,
}

impl std::io::Read for Interruptible {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.stream.read(buf) {
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if self.stop.load(Ordering::SeqCst)
                        || std::time::Instant::now() >= self.deadline
                    {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "no answer before the cell ended",
                        ));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }
}

impl std::io::Write for Interruptible {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}

/// A failure of the grader's socket, as the grade's error.
pub(super) fn socket_error(source: std::io::Error) -> GradeError {
    GradeError::Run(crate::run::RunError::Io {
        path: PathBuf::from("(the grader's socket)"),
        source,
    })
}

/// The judge of one check cell, on a thread of this process, while the kernel runs the cell.
pub(super) struct Judging {
    pub(super) stop: Arc<AtomicBool>,
    pub(super) thread: std::thread::JoinHandle<Result<CheckResult, JudgeError>>,
}

impl Judging {
    fn start(
        exercise: String,
        socket: &UnixStream,
        limit: Duration,
    ) -> Result<Judging, GradeError> {
        let stream = socket.try_clone().map_err(socket_error)?;
        // An answer from an earlier process of this kernel that came after its judge gave up
        // (a time-out) is still in the socket: drop it before this cell's judge listens.
        exam::drain(&stream).map_err(socket_error)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            // Wait for the cell to start serving (it compiles first), or for the cell to end.
            let mut ready = libc::pollfd {
                fd: stream.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            loop {
                // SAFETY: poll(2) on one pollfd we own, with a 100 ms timeout.
                let n = unsafe { libc::poll(&mut ready, 1, 100) };
                if n > 0 {
                    break;
                }
                let e = std::io::Error::last_os_error();
                if n < 0 && e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(JudgeError::NotReady(e.to_string()));
                }
                if stopped.load(Ordering::SeqCst) {
                    return Err(JudgeError::NotReady(
                        "the check cell ended without asking for questions".into(),
                    ));
                }
            }
            // From here on a silent student's side costs at most the cell's time limit, and
            // nothing once the cell is over (its process killed or ended).
            let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
            let _ = stream.set_write_timeout(Some(limit));
            exam::judge(
                &exercise,
                Interruptible {
                    stream,
                    stop: stopped,
                    deadline: std::time::Instant::now() + limit,
                },
            )
        });
        Ok(Judging { stop, thread })
    }

    fn finish(self) -> Result<CheckResult, JudgeError> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .join()
            .unwrap_or_else(|_| Err(JudgeError::NotReady("the judge panicked".into())))
    }
}
