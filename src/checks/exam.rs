//! Grading with the judge out of the student's reach.
//!
//! In a notebook, a check runs in the student's own kernel: it draws the inputs, calls the
//! student's function, compares with the library's reference and shows the table. That is
//! fine for feedback, but nothing in that process can be trusted for a grade: the student's
//! code shares its memory, its stdout and its threads.
//!
//! So when `kto-lab-notebooks grade` grades a notebook, a check is split in two along the one
//! line every check already has — the call into the student's code ([`super::Ask`]):
//!
//! - **The judge** (the grader's own process, [`judge`]) runs the check: it draws the visible
//!   and the hidden inputs (the hidden seed never leaves it), computes the expected values with
//!   the references, and for each case sends the student's process a *question* — the inputs of
//!   one call, nothing else.
//! - **The student's process** (the kernel, with the library built with the `exam` feature)
//!   runs the check cell, in which `checks::labN::exercise(f)` does not check but answers:
//!   it reads questions from the grader's socket, calls `f`, sends the *answer* back, until the
//!   judge says it is done.
//!
//! What the student's process can do to its grade is therefore exactly what its functions
//! return: it never sees an expected value, a verdict, the seed or the judge's memory; a forged
//! line on stdout, a thread that rewrites output, a second report — none of it reaches the judge.
//! In the `exam` build the references themselves are crate-private ([`ANSWER_KEY`],
//! `answer_key!`), so a submission that calls one does not compile, whatever thread it calls
//! from.
//!
//! The wire: messages ([`ToStudent`], [`FromStudent`]) in postcard, each prefixed by its length
//! (u32, little-endian), on a Unix socket the grader opens before it starts the kernel and
//! passes by number in [`EXAM_FD_VAR`]. The first message from the student's side is
//! [`FromStudent::Ready`] with [`PROTOCOL`].

use std::io::{self, Read, Write};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Ask, CheckResult, Interrupted};

/// Names this wire format; a kernel speaking another one is refused.
pub const PROTOCOL: &str = "kto-lab-exam/1";

/// The environment variable holding the number of the file descriptor of the grader's socket
/// (inherited by the kernel's process).
pub const EXAM_FD_VAR: &str = "KTO_LAB_EXAM_FD";

/// The largest message either side accepts (lab 3's answers carry a model's gradient).
pub const MAX_MESSAGE: usize = 64 << 20;

/// The graded exercises' reference answers, which the `exam` build of the library keeps
/// crate-private: a submission naming one does not compile, and the grader reports it as a
/// reference call. Paths as a student writes them after `kto_lab::`.
pub const ANSWER_KEY: &[&str] = &[
    "losses::kto",
    "losses::kto_batch_mean",
    "losses::dpo",
    "losses::kto::reference_point",
    "losses::plain::kto",
    "losses::plain::kto_batch_mean",
    "losses::plain::dpo",
    "prospect::value",
    "prospect::kto_loss",
    "classroom::masked_sequence_sum",
    "classroom::kto_loss",
    "classroom::kto_step",
    "model::lora::Adapter::correction",
    "feedback::final_votes",
    "feedback::advise",
    "feedback::Record::to_training_line",
    "feedback::Record::parse_line",
    "checks::lab3::reference_row",
    "checks::lab4::reference_lines",
    "checks::lab4::reference_parse",
    "checks::lab4::reference_range",
];

/// From the judge to the student's process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToStudent {
    /// Call the exercise's function on these inputs (the exercise's question type, in postcard).
    Ask(Vec<u8>),
    /// The check is over: return from the check cell.
    Done,
}

/// From the student's process to the judge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FromStudent {
    /// The check cell of `exercise` runs and waits for questions.
    Ready {
        /// [`PROTOCOL`].
        protocol: String,
        /// The exercise id (`1.1`).
        exercise: String,
    },
    /// What the function returned (the exercise's answer type, in postcard).
    Answer(Vec<u8>),
    /// The function reached a `todo!()`.
    NotDone,
    /// The function panicked, with this message.
    Panicked(String),
}

/// Writes one message: its length (u32, little-endian), then its postcard bytes.
pub fn send<M: Serialize>(w: &mut impl Write, message: &M) -> io::Result<()> {
    let bytes = postcard::to_allocvec(message).map_err(|e| io::Error::other(e.to_string()))?;
    if bytes.len() > MAX_MESSAGE {
        return Err(io::Error::other(format!(
            "a message of {} bytes is over the limit of {MAX_MESSAGE}",
            bytes.len()
        )));
    }
    w.write_all(&(bytes.len() as u32).to_le_bytes())?;
    w.write_all(&bytes)?;
    w.flush()
}

/// Reads one message written by [`send`]; a length over [`MAX_MESSAGE`] or bytes that are not
/// an `M` are errors (`InvalidData`).
pub fn receive<M: DeserializeOwned>(r: &mut impl Read) -> io::Result<M> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a message of {len} bytes is over the limit of {MAX_MESSAGE}"),
        ));
    }
    let mut bytes = vec![0u8; len];
    r.read_exact(&mut bytes)?;
    postcard::from_bytes(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The student's side of one exercise: the entry point every `checks::labN::exercise(f)` goes
/// through, with `f` turned into `answer` (question → answer) and the check's body.
///
/// In an ordinary build it runs `check` here, asking `answer` directly. In the `exam` build it
/// serves the grader's questions instead and returns a placeholder result (the grade is the
/// judge's).
pub(crate) fn answer<Q, A>(
    exercise: &str,
    answer: impl FnMut(&Q) -> A,
    check: fn(&mut dyn Ask<Q, A>) -> CheckResult,
) -> CheckResult
where
    Q: Serialize + DeserializeOwned,
    A: Serialize + DeserializeOwned,
{
    #[cfg(not(feature = "exam"))]
    {
        let _ = exercise;
        check(&mut super::Local(answer))
    }
    #[cfg(feature = "exam")]
    {
        let _ = check;
        serve(exercise, answer)
    }
}

/// Serves the judge's questions for `exercise` on the grader's socket until it is done.
#[cfg(feature = "exam")]
fn serve<Q: DeserializeOwned, A: Serialize>(
    exercise: &str,
    mut answer: impl FnMut(&Q) -> A,
) -> CheckResult {
    let outcome = (|| -> io::Result<usize> {
        let mut socket = grader_socket()?;
        // A question sent to an earlier process of this kernel that died before reading it
        // (a time-out) is still in the socket: drop it, so this cell answers only its own.
        drain(&socket)?;
        send(
            &mut socket,
            &FromStudent::Ready {
                protocol: PROTOCOL.to_owned(),
                exercise: exercise.to_owned(),
            },
        )?;
        let mut asked = 0;
        loop {
            match receive::<ToStudent>(&mut socket)? {
                ToStudent::Done => return Ok(asked),
                ToStudent::Ask(bytes) => {
                    asked += 1;
                    let reply = match postcard::from_bytes::<Q>(&bytes) {
                        Err(e) => FromStudent::Panicked(format!("an unreadable question: {e}")),
                        Ok(q) => match super::guarded(|| answer(&q)) {
                            Ok(a) => match postcard::to_allocvec(&a) {
                                Ok(bytes) => FromStudent::Answer(bytes),
                                Err(e) => {
                                    FromStudent::Panicked(format!("an unsendable answer: {e}"))
                                }
                            },
                            Err(Interrupted::NotDone) => FromStudent::NotDone,
                            Err(Interrupted::Panicked(m)) => FromStudent::Panicked(m),
                        },
                    };
                    send(&mut socket, &reply)?;
                }
            }
        }
    })();
    let line = match outcome {
        Ok(n) => format!("answered the grader's {n} questions"),
        Err(e) => format!("could not answer the grader: {e}"),
    };
    CheckResult {
        exercise: format!("Exercise {exercise}"),
        status: super::Status::NotDone,
        cases: Vec::new(),
        hint: line,
        hidden: 0,
    }
}

/// Reads and drops whatever is waiting on `socket`, without blocking: a message left by an
/// earlier process of the kernel that was killed mid-exchange. Both ends call it before a check
/// cell's exchange begins.
#[cfg(unix)]
pub fn drain(mut socket: &std::os::unix::net::UnixStream) -> io::Result<()> {
    socket.set_nonblocking(true)?;
    let mut buf = [0u8; 4096];
    let outcome = loop {
        match socket.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(e),
        }
    };
    socket.set_nonblocking(false)?;
    outcome
}

#[cfg(all(feature = "exam", not(unix)))]
fn drain(_socket: &std::fs::File) -> io::Result<()> {
    Ok(())
}

/// The grader's socket, from [`EXAM_FD_VAR`] (a duplicate: the inherited descriptor stays open
/// for the next check cell).
#[cfg(all(feature = "exam", unix))]
fn grader_socket() -> io::Result<std::os::unix::net::UnixStream> {
    use std::os::fd::FromRawFd;
    let fd: i32 = std::env::var(EXAM_FD_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| io::Error::other(format!("{EXAM_FD_VAR} is not set")))?;
    // SAFETY: dup returns a new descriptor we own (or -1, checked); the original stays open.
    let own = unsafe { libc::dup(fd) };
    if own < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `own` is a fresh descriptor owned by nothing else.
    Ok(unsafe { std::os::unix::net::UnixStream::from_raw_fd(own) })
}

#[cfg(all(feature = "exam", not(unix)))]
fn grader_socket() -> io::Result<std::fs::File> {
    Err(io::Error::other("grading needs a Unix socket"))
}

/// Why the judge could not run a check at all.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    /// The exercise id is not one of the labs'.
    #[error("no check for exercise `{0}`")]
    UnknownExercise(String),
    /// The student's side never said it was ready, or said so for another exercise or protocol.
    #[error("{0}")]
    NotReady(String),
}

#[cfg(not(feature = "exam"))]
/// The judge's end of the grader's socket while one check runs: every question the check asks
/// goes over it. Once the student's side stops answering (its process ended, the time ran
/// out, a garbled message), every later question fails at once with the same reason.
pub struct Remote<S> {
    stream: S,
    broken: Option<String>,
    /// Questions asked so far.
    pub asked: usize,
}

#[cfg(not(feature = "exam"))]
impl<S: Read + Write> Remote<S> {
    fn exchange(&mut self, question: Vec<u8>) -> Result<FromStudent, String> {
        if let Some(why) = &self.broken {
            return Err(why.clone());
        }
        self.asked += 1;
        let reply = send(&mut self.stream, &ToStudent::Ask(question))
            .and_then(|()| receive::<FromStudent>(&mut self.stream));
        reply.map_err(|e| {
            let why = format!("the exercise's process stopped answering ({e})");
            self.broken = Some(why.clone());
            why
        })
    }

    fn run<Q, A>(&mut self, check: fn(&mut dyn Ask<Q, A>) -> CheckResult) -> CheckResult
    where
        Q: Serialize,
        A: DeserializeOwned,
    {
        let visible = check(&mut Typed(self, std::marker::PhantomData));
        visible.with_hidden(|| check(&mut Typed(self, std::marker::PhantomData)))
    }
}

#[cfg(not(feature = "exam"))]
/// [`Remote`] asking questions of type `Q`, expecting answers of type `A`.
struct Typed<'r, S, Q, A>(&'r mut Remote<S>, std::marker::PhantomData<fn(&Q) -> A>);

#[cfg(not(feature = "exam"))]
impl<S: Read + Write, Q: Serialize, A: DeserializeOwned> Ask<Q, A> for Typed<'_, S, Q, A> {
    fn ask(&mut self, question: &Q) -> Result<A, Interrupted> {
        let bytes = postcard::to_allocvec(question)
            .map_err(|e| Interrupted::Panicked(format!("the grader's question: {e}")))?;
        match self.0.exchange(bytes).map_err(Interrupted::Panicked)? {
            FromStudent::Answer(bytes) => postcard::from_bytes(&bytes).map_err(|_| {
                Interrupted::Panicked("an answer that is not of the exercise's type".into())
            }),
            FromStudent::NotDone => Err(Interrupted::NotDone),
            FromStudent::Panicked(message) => Err(Interrupted::Panicked(message)),
            FromStudent::Ready { .. } => Err(Interrupted::Panicked(
                "a second Ready instead of an answer".into(),
            )),
        }
    }
}

/// Runs the check of `exercise` (visible cases, then the hidden ones with this process's
/// [`super::grading::hidden_seed`]) against the student's process at the other end of
/// `stream`, then tells it to stop. `stream` should have a read timeout: the judge waits for
/// the student's side as long as it allows.
#[cfg(not(feature = "exam"))]
pub fn judge<S: Read + Write>(exercise: &str, stream: S) -> Result<CheckResult, JudgeError> {
    use super::{lab1, lab2, lab3, lab4, lab5};
    let mut remote = Remote {
        stream,
        broken: None,
        asked: 0,
    };
    match receive::<FromStudent>(&mut remote.stream) {
        Ok(FromStudent::Ready { protocol, exercise: theirs })
            if protocol == PROTOCOL && theirs == exercise => {}
        Ok(FromStudent::Ready { protocol, exercise: theirs }) => {
            return Err(JudgeError::NotReady(format!(
                "the check cell answered for exercise `{theirs}` ({protocol}), not `{exercise}` ({PROTOCOL})"
            )))
        }
        Ok(other) => {
            return Err(JudgeError::NotReady(format!(
                "the check cell began with {other:?} instead of Ready"
            )))
        }
        Err(e) => {
            return Err(JudgeError::NotReady(format!(
                "the check cell never asked for questions ({e})"
            )))
        }
    }
    let result = match exercise {
        "1.1" => remote.run(lab1::check_kto_batch_mean),
        "1.2" => remote.run(lab1::check_reference_point),
        "1.3" => remote.run(lab1::check_kto_tensor),
        "2.1" => remote.run(lab2::check_value),
        "2.2" => remote.run(lab2::check_kto_loss),
        "2.3" => remote.run(lab2::check_chart),
        "3.1" => remote.run(lab3::check_row_targets),
        "3.2" => remote.run(lab3::check_sequence_logprobs),
        "3.3" => remote.run(lab3::check_kto_step),
        "3.4" => remote.run(lab3::check_lora_linear),
        "4.1" => remote.run(lab4::check_training_lines),
        "4.2" => remote.run(lab4::check_parse_line),
        "4.3" => remote.run(lab4::check_desirable_weight_range),
        "5.1" => remote.run(lab5::check_dpo_loss),
        "5.2" => remote.run(lab5::check_dpo_grads),
        "5.3" => remote.run(lab5::check_write_feedback),
        other => return Err(JudgeError::UnknownExercise(other.to_owned())),
    };
    // Whether the student's side hears it or not, the verdict is made.
    let _ = send(&mut remote.stream, &ToStudent::Done);
    Ok(result)
}

/// The exercise ids [`judge`] knows, in lab order.
pub const EXERCISES: &[&str] = &[
    "1.1", "1.2", "1.3", "2.1", "2.2", "2.3", "3.1", "3.2", "3.3", "3.4", "4.1", "4.2", "4.3",
    "5.1", "5.2", "5.3",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_floats_survive() {
        let mut buf = Vec::new();
        let ready = FromStudent::Ready {
            protocol: PROTOCOL.into(),
            exercise: "1.2".into(),
        };
        send(&mut buf, &ready).unwrap();
        let answer: Option<f32> = Some(f32::NAN);
        let bytes = postcard::to_allocvec(&answer).unwrap();
        send(&mut buf, &FromStudent::Answer(bytes.clone())).unwrap();
        send(&mut buf, &ToStudent::Done).unwrap();
        let mut r = &buf[..];
        assert_eq!(receive::<FromStudent>(&mut r).unwrap(), ready);
        let FromStudent::Answer(got) = receive::<FromStudent>(&mut r).unwrap() else {
            panic!("an answer")
        };
        let got: Option<f32> = postcard::from_bytes(&got).unwrap();
        // JSON would have turned NaN into null, i.e. None: an answer changed on the wire.
        assert!(got.is_some_and(f32::is_nan));
        assert_eq!(receive::<ToStudent>(&mut r).unwrap(), ToStudent::Done);
        assert!(receive::<ToStudent>(&mut r).is_err());
    }

    #[test]
    fn an_oversized_or_garbled_message_is_an_error() {
        let mut r = &(u32::MAX).to_le_bytes()[..];
        let e = receive::<ToStudent>(&mut r).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let mut buf = 3u32.to_le_bytes().to_vec();
        buf.extend([9, 9, 9]);
        assert!(receive::<FromStudent>(&mut &buf[..]).is_err());
    }

    #[test]
    fn every_exercise_has_a_judge() {
        for id in EXERCISES {
            // A student's side that is gone: the judge still answers with a result, not a panic.
            let mut wire = Vec::new();
            send(
                &mut wire,
                &FromStudent::Ready {
                    protocol: PROTOCOL.into(),
                    exercise: (*id).into(),
                },
            )
            .unwrap();
            let stream = Duplex {
                read: std::io::Cursor::new(wire),
                written: Vec::new(),
            };
            let result = judge(id, stream).unwrap();
            assert_eq!(
                result.status,
                super::super::Status::Failed,
                "{id}: {result}"
            );
        }
        assert!(matches!(
            judge("9.9", Duplex::default()),
            Err(JudgeError::NotReady(_))
        ));
    }

    /// An in-memory stream: reads from a buffer, keeps what is written.
    #[derive(Default)]
    struct Duplex {
        read: std::io::Cursor<Vec<u8>>,
        written: Vec<u8>,
    }
    impl Read for Duplex {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.read.read(buf)
        }
    }
    impl Write for Duplex {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
}
