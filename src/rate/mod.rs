//! The rating page: a student gives the thumbs (feature `rate`; `kto-lab rate` serves it).
//!
//! One answer at a time from an [`AnswerPool`]; every click goes through lab 4's
//! [`Click`](crate::feedback::Click) into the [`VoteLog`] *before* the page hears "saved", so an
//! acknowledged vote survives the server being killed. The training rows are
//! [`final_records`](crate::feedback::final_records) of that log.
//!
//! ## What the server guarantees (a local web app that writes files is an attack surface)
//!
//! * **Every request's `Host`** must name this server (`127.0.0.1:PORT`, `localhost:PORT`,
//!   `[::1]:PORT` or the address it is bound to): a DNS-rebinding page, whose requests carry
//!   its own host name, is refused.
//! * **Every API call needs the per-run token** (`X-Rate-Token`, 128 random bits, printed in the
//!   page's URL); the page itself needs it in `?token=`. A web page elsewhere cannot read it,
//!   and cannot send the header without a CORS preflight, which this server never grants.
//! * **Writes** (`POST`) must also carry `Content-Type: application/json` and, when the browser
//!   sends an `Origin`, this server's own: a cross-site form post is refused before the token
//!   is even looked at.
//! * Bodies over [`MAX_BODY`] bytes, bad JSON, unknown fields, unknown answers, bad rater names,
//!   unknown paths and methods get a 4xx with a one-line JSON `{"error": …}` and write nothing.
//!   No request panics the server (handlers return errors; a poisoned lock is recovered).
//! * Loopback by default. Binding another address (a class on a LAN) requires rater names and
//!   prints a warning: there the token is the only lock, and it travels in clear HTTP.
//!
//! The HTTP stack is axum on hyper and tokio; the routing below is one `match` on (method,
//! path), so that every error, including hyper's body limit, is answered in the same JSON.

mod http;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::feedback::{
    AnswerPool, Choice, Click, FeedbackError, PoolAnswer, RatedClick, RaterProgress, VoteLog,
};

/// The largest request body accepted, in bytes (a vote is under 200).
pub const MAX_BODY: usize = 4096;

/// Why the page could not start.
#[derive(Debug, thiserror::Error)]
pub enum RateError {
    /// The address could not be bound (in use, not local, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server's runtime could not start.
    #[error("cannot start the server: {0}")]
    Runtime(std::io::Error),
    /// The log could not be read (it is never rewritten).
    #[error(transparent)]
    Feedback(#[from] FeedbackError),
    /// The log names an answer the pool does not have: a log from another pool.
    #[error("{}: line {line} names answer {answer:?}, which {pool} does not have (a log from another session? use a fresh --store)", log.display())]
    ForeignLog {
        /// The log.
        log: std::path::PathBuf,
        /// Its line.
        line: usize,
        /// The answer id.
        answer: String,
        /// The pool, in words.
        pool: String,
    },
}

/// How to run the page.
#[derive(Debug, Clone)]
pub struct RateOptions {
    /// The answers to rate.
    pub pool: AnswerPool,
    /// Where clicks go.
    pub log: VoteLog,
    /// Where to listen (`127.0.0.1:0` picks a free port).
    pub bind: SocketAddr,
    /// Refuse votes without a rater name (always on for a non-loopback address).
    pub names_required: bool,
}

/// A page being served (on its own threads). Dropping it stops the server.
pub struct RunningPage {
    addr: SocketAddr,
    token: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningPage {
    /// The page's address, with the token: what to open in a browser.
    pub fn url(&self) -> String {
        format!("http://{}/?token={}", host_of(self.addr), self.token)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The per-run token (what `X-Rate-Token` must carry).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Blocks until the server stops (it runs until the process ends).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Stops the server and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RunningPage {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Display for RunningPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url())
    }
}

impl std::fmt::Debug for RunningPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RunningPage({})", self.addr)
    }
}

/// `host:port` as a URL writes it (IPv6 in brackets).
fn host_of(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    }
}

/// Starts the page on its own threads and returns at once: the log is replayed, the address
/// bound (errors come back here, not later), the token drawn from the operating system.
pub fn start(opts: RateOptions) -> Result<RunningPage, RateError> {
    let loaded = opts.log.load()?;
    let mut raters: HashMap<String, RaterProgress> = HashMap::new();
    for (i, c) in loaded.clicks.iter().enumerate() {
        if opts.pool.get(&c.answer).is_none() {
            return Err(RateError::ForeignLog {
                log: opts.log.path().to_path_buf(),
                line: i + 1,
                answer: c.answer.clone(),
                pool: format!("the pool of {} answers", opts.pool.answers.len()),
            });
        }
        raters.entry(c.rater.clone()).or_default().apply(c);
    }
    let listener = TcpListener::bind(opts.bind).map_err(|source| RateError::Bind {
        addr: opts.bind,
        source,
    })?;
    let addr = listener.local_addr().map_err(RateError::Runtime)?;
    listener.set_nonblocking(true).map_err(RateError::Runtime)?;
    let token = new_token().map_err(RateError::Runtime)?;
    let names_required = opts.names_required || !addr.ip().is_loopback();
    let shared = Arc::new(Shared {
        pool: opts.pool,
        log: opts.log,
        raters: Mutex::new(raters),
        token: token.clone(),
        port: addr.port(),
        names_required,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("kto-lab-rate")
        .enable_io()
        .build()
        .map_err(RateError::Runtime)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let listener = {
        let _guard = runtime.enter();
        tokio::net::TcpListener::from_std(listener).map_err(RateError::Runtime)?
    };
    let thread = std::thread::Builder::new()
        .name("kto-lab-rate".into())
        .spawn(move || {
            let app = axum::Router::new()
                .fallback(http::dispatch)
                .with_state(shared);
            runtime.block_on(async move {
                let served = axum::serve(listener, app).with_graceful_shutdown(async {
                    let _ = stopped.await;
                });
                if let Err(e) = served.await {
                    eprintln!("kto-lab rate: the server stopped: {e}");
                }
            });
        })
        .map_err(RateError::Runtime)?;
    Ok(RunningPage {
        addr,
        token,
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// 128 bits from the operating system, as 32 hex digits.
fn new_token() -> std::io::Result<String> {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(std::io::Error::other)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// What every request handler shares.
struct Shared {
    pool: AnswerPool,
    log: VoteLog,
    /// Each rater's place, replayed from the log at start and kept in step with every append
    /// (under this lock, so the log's order is the order the state saw).
    raters: Mutex<HashMap<String, RaterProgress>>,
    token: String,
    /// The port: a `Host` must name it.
    port: u16,
    names_required: bool,
}

/// Why a vote was not saved.
enum Refused {
    /// The answer is not the rater's current one.
    NotCurrent(String),
    /// The log could not be written.
    Store(FeedbackError),
}

/// What the page is told after every request: where the rater stands.
#[derive(Debug, Serialize)]
struct State<'a> {
    rater: &'a str,
    current: Option<&'a PoolAnswer>,
    next: Option<&'a PoolAnswer>,
    rated: usize,
    up: usize,
    down: usize,
    skipped: usize,
    remaining: usize,
    total: usize,
    up_share: Option<f64>,
    can_undo: bool,
    last: Option<Last<'a>>,
}

#[derive(Debug, Serialize)]
struct Last<'a> {
    answer: &'a str,
    vote: Choice,
}

impl Shared {
    fn state_json(&self, rater: &str, p: &RaterProgress) -> serde_json::Value {
        let (current, next) = p.current(&self.pool);
        let (up, down, skipped) = p.counts();
        let total = self.pool.answers.len();
        let state = State {
            rater,
            current,
            next,
            rated: up + down,
            up,
            down,
            skipped,
            remaining: total - p.decided().min(total),
            total,
            up_share: (up + down > 0).then(|| up as f64 / (up + down) as f64),
            can_undo: p.last().is_some(),
            last: p.last().map(|(answer, vote)| Last { answer, vote }),
        };
        serde_json::to_value(state).unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, RaterProgress>> {
        // A panic elsewhere cannot leave a half-applied click (apply is one insert), so a
        // poisoned lock's data is still good.
        self.raters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The rater's state now.
    fn state(&self, rater: &str) -> serde_json::Value {
        let raters = self.lock();
        let empty = RaterProgress::default();
        self.state_json(rater, raters.get(rater).unwrap_or(&empty))
    }

    /// The rater's vote (or skip) on `answer`, which must be their current one: a vote from a
    /// stale second tab would silently change an earlier decision and what undo takes back.
    fn vote(
        &self,
        rater: &str,
        answer: &PoolAnswer,
        choice: Choice,
    ) -> Result<serde_json::Value, Refused> {
        let mut raters = self.lock();
        let empty = RaterProgress::default();
        let current = raters.get(rater).unwrap_or(&empty).current(&self.pool).0;
        if current.map(|a| a.id.as_str()) != Some(answer.id.as_str()) {
            return Err(Refused::NotCurrent(answer.id.clone()));
        }
        self.record_locked(&mut raters, rater, answer, Some(choice))
            .map_err(Refused::Store)
    }

    fn record_locked(
        &self,
        raters: &mut HashMap<String, RaterProgress>,
        rater: &str,
        answer: &PoolAnswer,
        choice: Option<Choice>,
    ) -> Result<serde_json::Value, FeedbackError> {
        let click = RatedClick {
            answer: answer.id.clone(),
            rater: rater.to_string(),
            time_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            click: Click::new(
                answer.prompt.as_str(),
                answer.completion.as_str(),
                choice.map_or(crate::feedback::Vote::Clear, Choice::vote),
            ),
            undo: choice.is_none(),
        };
        self.log.append(&click)?;
        let progress = raters.entry(rater.to_string()).or_default();
        progress.apply(&click);
        Ok(self.state_json(rater, progress))
    }

    /// Takes back the rater's last vote or skip (one lock: no other click comes between
    /// finding it and undoing it). `Ok(None)`: nothing to undo.
    fn undo(&self, rater: &str) -> Result<Option<serde_json::Value>, FeedbackError> {
        let mut raters = self.lock();
        let Some(answer) = raters
            .get(rater)
            .and_then(|p| p.last())
            .and_then(|(id, _)| self.pool.get(id))
        else {
            return Ok(None);
        };
        self.record_locked(&mut raters, rater, answer, None)
            .map(Some)
    }
}
