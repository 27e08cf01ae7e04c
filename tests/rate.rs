//! The rating page (`kto_lab::rate`, `kto-lab rate`), attacked and leaned on:
//!
//! - hostile requests — no token, a wrong one, a foreign `Origin` or `Host` (DNS rebinding), a
//!   form post, a huge body, bad JSON, unknown fields, an unknown answer, path traversal in a
//!   name or a path — are refused with a 4xx and a one-line JSON error, and write nothing;
//! - two raters voting at once lose nothing and tear no line;
//! - `kill -9` of the server loses no acknowledged vote, and a restart resumes;
//! - in headless Chromium (`scripts/check_rate_page.py`): rating by mouse and keyboard, undo,
//!   reload, and the store's final votes exactly (skipped without Chromium, except in CI).
//!
//! The pools here are written by hand: these tests are about the page, not the model.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kto_lab::feedback::{final_records, AnswerPool, Vote, VoteLog};
use kto_lab::rate::{start, RateOptions, RunningPage, MAX_BODY};

fn pool(n: usize) -> AnswerPool {
    AnswerPool::new(
        "a hand-written pool (test)",
        (0..n).map(|i| (format!("Question {i}?"), format!("Answer {i}."))),
    )
}

fn page(dir: &Path, n: usize) -> RunningPage {
    start(RateOptions {
        pool: pool(n),
        log: VoteLog::new(dir.join("votes.jsonl")),
        bind: "127.0.0.1:0".parse().unwrap(),
        names_required: false,
    })
    .expect("the page starts")
}

/// One raw HTTP/1.1 exchange: (status, body). Raw, so that any header can be forged.
fn raw(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).expect("sends");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |x| x.1).to_string();
    (status, body)
}

/// A request with these headers (`Connection: close` added) and body.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut r = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        r.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    r.push_str("\r\n");
    r.push_str(body);
    raw(addr, r.as_bytes())
}

/// A well-formed API call from the page itself.
fn api(page: &RunningPage, method: &str, path: &str, body: &str) -> (u16, String) {
    let host = format!("127.0.0.1:{}", page.addr().port());
    let origin = format!("http://{host}");
    request(
        page.addr(),
        method,
        path,
        &[
            ("Host", &host),
            ("Origin", &origin),
            ("Content-Type", "application/json"),
            ("X-Rate-Token", page.token()),
        ],
        body,
    )
}

fn vote(page: &RunningPage, rater: &str, answer: &str, vote: &str) -> (u16, String) {
    api(
        page,
        "POST",
        "/api/vote",
        &format!(r#"{{"rater":"{rater}","answer":"{answer}","vote":"{vote}"}}"#),
    )
}

fn log_bytes(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("votes.jsonl")).unwrap_or_default()
}

#[test]
fn hostile_requests_are_refused_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let page = page(dir.path(), 5);
    let addr = page.addr();
    let host = format!("127.0.0.1:{}", addr.port());
    let origin = format!("http://{host}");
    let token = page.token().to_string();
    let good_vote = r#"{"rater":"ana","answer":"a000","vote":"up"}"#;
    let huge = format!(
        r#"{{"rater":"ana","answer":"a000","vote":"up","x":"{}"}}"#,
        "x".repeat(MAX_BODY)
    );
    let deep = format!("{}{}", "[".repeat(2000), "]".repeat(2000));
    let json_post = |extra: Vec<(&'static str, String)>, drop: &[&str], body: &str| {
        let mut headers: Vec<(&str, String)> = vec![
            ("Host", host.clone()),
            ("Origin", origin.clone()),
            ("Content-Type", "application/json".into()),
            ("X-Rate-Token", token.clone()),
        ];
        headers.retain(|(k, _)| !drop.contains(k));
        for (k, v) in extra {
            headers.retain(|(h, _)| *h != k);
            headers.push((k, v));
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        request(addr, "POST", "/api/vote", &headers, body)
    };
    let cases: Vec<(&str, (u16, String))> = vec![
        ("no token", json_post(vec![], &["X-Rate-Token"], good_vote)),
        (
            "wrong token",
            json_post(vec![("X-Rate-Token", "0".repeat(32))], &[], good_vote),
        ),
        (
            "token one character short",
            json_post(
                vec![("X-Rate-Token", token[1..].to_string())],
                &[],
                good_vote,
            ),
        ),
        (
            "foreign Origin",
            json_post(
                vec![("Origin", "http://evil.example".into())],
                &[],
                good_vote,
            ),
        ),
        (
            "Origin null (sandboxed frame)",
            json_post(vec![("Origin", "null".into())], &[], good_vote),
        ),
        (
            "DNS rebinding (foreign Host)",
            json_post(
                vec![("Host", format!("evil.example:{}", addr.port()))],
                &[],
                good_vote,
            ),
        ),
        ("no Host", json_post(vec![], &["Host"], good_vote)),
        (
            "a form post",
            json_post(
                vec![("Content-Type", "application/x-www-form-urlencoded".into())],
                &[],
                "rater=ana&answer=a000&vote=up",
            ),
        ),
        (
            "text/plain (a simple CORS request)",
            json_post(vec![("Content-Type", "text/plain".into())], &[], good_vote),
        ),
        ("huge body", json_post(vec![], &[], &huge)),
        (
            "a body longer than it says",
            json_post(vec![("Content-Length", "10".into())], &[], good_vote),
        ),
        ("bad JSON", json_post(vec![], &[], "{\"rater\":")),
        ("deeply nested JSON", json_post(vec![], &[], &deep)),
        (
            "unknown field",
            json_post(
                vec![],
                &[],
                r#"{"rater":"ana","answer":"a000","vote":"up","label":true}"#,
            ),
        ),
        (
            "unknown vote",
            json_post(
                vec![],
                &[],
                r#"{"rater":"ana","answer":"a000","vote":"maybe"}"#,
            ),
        ),
        (
            "unknown answer",
            json_post(
                vec![],
                &[],
                r#"{"rater":"ana","answer":"a999","vote":"up"}"#,
            ),
        ),
        (
            "path traversal as the answer",
            json_post(
                vec![],
                &[],
                r#"{"rater":"ana","answer":"../../etc/passwd","vote":"up"}"#,
            ),
        ),
        (
            "path traversal as the name",
            json_post(
                vec![],
                &[],
                r#"{"rater":"../../etc/passwd","answer":"a000","vote":"up"}"#,
            ),
        ),
        (
            "a name with a newline",
            json_post(
                vec![],
                &[],
                r#"{"rater":"ana\nbo","answer":"a000","vote":"up"}"#,
            ),
        ),
        (
            "a 41-character name",
            json_post(
                vec![],
                &[],
                &format!(
                    r#"{{"rater":"{}","answer":"a000","vote":"up"}}"#,
                    "a".repeat(41)
                ),
            ),
        ),
        (
            "not the current answer",
            json_post(
                vec![],
                &[],
                r#"{"rater":"ana","answer":"a003","vote":"up"}"#,
            ),
        ),
        (
            "undo with nothing to undo",
            request(
                addr,
                "POST",
                "/api/undo",
                &[
                    ("Host", &host),
                    ("Content-Type", "application/json"),
                    ("X-Rate-Token", &token),
                ],
                r#"{"rater":"ana"}"#,
            ),
        ),
        (
            "GET on a write",
            request(
                addr,
                "GET",
                "/api/vote",
                &[("Host", &host), ("X-Rate-Token", &token)],
                "",
            ),
        ),
        (
            "state without a token",
            request(addr, "GET", "/api/state?rater=ana", &[("Host", &host)], ""),
        ),
        (
            "a bad query",
            request(
                addr,
                "GET",
                "/api/state?rater=%ff",
                &[("Host", &host), ("X-Rate-Token", &token)],
                "",
            ),
        ),
        (
            "path traversal in the URL",
            request(addr, "GET", "/../../etc/passwd", &[("Host", &host)], ""),
        ),
        (
            "encoded traversal in the URL",
            request(
                addr,
                "GET",
                "/%2e%2e/%2e%2e/etc/passwd",
                &[("Host", &host)],
                "",
            ),
        ),
        (
            "unknown path",
            request(
                addr,
                "GET",
                "/api/admin",
                &[("Host", &host), ("X-Rate-Token", &token)],
                "",
            ),
        ),
        (
            "OPTIONS preflight",
            request(
                addr,
                "OPTIONS",
                "/api/vote",
                &[
                    ("Host", &host),
                    ("Origin", "http://evil.example"),
                    ("Access-Control-Request-Method", "POST"),
                ],
                "",
            ),
        ),
    ];
    let mut failures = Vec::new();
    for (what, (status, body)) in &cases {
        let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
        let message = json
            .as_ref()
            .and_then(|j| j["error"].as_str())
            .unwrap_or("");
        let one_line = !message.is_empty() && !message.contains('\n');
        // hyper answers a malformed request itself (no Host, a body longer than declared may
        // also end the connection): a 4xx or a closed connection, never a 2xx.
        let refused = (400..500).contains(status) || *status == 0;
        let by_us = one_line || *status == 0 || *status == 400;
        println!(
            "{status} {what}: {}",
            if message.is_empty() {
                body.trim()
            } else {
                message
            }
        );
        if !(refused && by_us) {
            failures.push(format!("{what}: {status} {body}"));
        }
    }
    assert!(
        failures.is_empty(),
        "not refused as expected:\n{}",
        failures.join("\n")
    );
    assert!(
        log_bytes(dir.path()).is_empty(),
        "a refused request wrote to the log"
    );
    // The page needs its token too; wrong, it says so in plain text.
    let (status, body) = request(addr, "GET", "/?token=nope", &[("Host", &host)], "");
    assert_eq!(status, 403, "{body}");
    let (status, body) = request(
        addr,
        "GET",
        &format!("/?token={token}"),
        &[("Host", &host)],
        "",
    );
    assert!(status == 200 && body.contains("<html"), "{status} {body}");
    // And a good vote still works after all that: the server survived.
    let (status, body) = vote(&page, "ana", "a000", "up");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        log_bytes(dir.path())
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
        1
    );
}

#[test]
fn a_lan_session_requires_names() {
    let dir = tempfile::tempdir().unwrap();
    let p = start(RateOptions {
        pool: pool(3),
        log: VoteLog::new(dir.path().join("votes.jsonl")),
        bind: "0.0.0.0:0".parse().unwrap(),
        names_required: false,
    })
    .expect("the page starts");
    let addr: SocketAddr = format!("127.0.0.1:{}", p.addr().port()).parse().unwrap();
    let host = addr.to_string();
    let headers = [
        ("Host", host.as_str()),
        ("Content-Type", "application/json"),
        ("X-Rate-Token", p.token()),
    ];
    let (status, body) = request(
        addr,
        "POST",
        "/api/vote",
        &headers,
        r#"{"answer":"a000","vote":"up"}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("needs a rater name"), "{body}");
    let (status, body) = request(addr, "GET", "/api/config", &headers, "");
    assert!(
        status == 200 && body.contains(r#""names_required":true"#),
        "{body}"
    );
    let (status, body) = request(
        addr,
        "POST",
        "/api/vote",
        &headers,
        r#"{"rater":"ana","answer":"a000","vote":"up"}"#,
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn votes_undo_and_a_restart_resume() {
    let dir = tempfile::tempdir().unwrap();
    let p = page(dir.path(), 4);
    assert_eq!(vote(&p, "ana", "a000", "up").0, 200);
    assert_eq!(vote(&p, "ana", "a001", "skip").0, 200);
    assert_eq!(vote(&p, "ana", "a002", "down").0, 200);
    let (status, body) = api(&p, "POST", "/api/undo", r#"{"rater":"ana"}"#);
    assert_eq!(status, 200, "{body}");
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(state["current"]["id"], "a002");
    assert_eq!(
        (state["rated"].as_u64(), state["skipped"].as_u64()),
        (Some(1), Some(1))
    );
    p.stop();
    // A new server on the same log picks up where ana was.
    let p = page(dir.path(), 4);
    let (_, body) = api(&p, "GET", "/api/state?rater=ana", "");
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(state["current"]["id"], "a002", "{state}");
    assert_eq!(state["up_share"], 1.0);
    assert_eq!(vote(&p, "ana", "a002", "down").0, 200);
    let clicks = VoteLog::new(dir.path().join("votes.jsonl"))
        .load()
        .unwrap()
        .clicks;
    let rows = final_records(&clicks);
    let labels: Vec<(String, bool)> = rows
        .iter()
        .map(|r| {
            (
                r.metadata.as_ref().unwrap()["answer"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                r.label,
            )
        })
        .collect();
    assert_eq!(
        labels,
        [("a000".to_string(), true), ("a002".to_string(), false)]
    );
    assert!(rows.iter().all(|r| r.prompt.is_conversational()));
    assert_eq!(
        clicks
            .iter()
            .filter(|c| c.click.vote == Vote::Clear)
            .count(),
        2
    );
}

#[test]
fn two_raters_at_once_lose_nothing() {
    const N: usize = 150;
    let dir = tempfile::tempdir().unwrap();
    let p = page(dir.path(), N);
    std::thread::scope(|s| {
        for (rater, v) in [("ana", "up"), ("bo", "down")] {
            let p = &p;
            s.spawn(move || {
                for i in 0..N {
                    let (status, body) = vote(p, rater, &format!("a{i:03}"), v);
                    assert_eq!(status, 200, "{rater} {i}: {body}");
                }
            });
        }
    });
    let loaded = VoteLog::new(dir.path().join("votes.jsonl")).load().unwrap();
    assert!(loaded.torn_tail.is_none());
    assert_eq!(loaded.clicks.len(), 2 * N);
    let rows = final_records(&loaded.clicks);
    assert_eq!(rows.len(), 2 * N);
    for (rater, label) in [("ana", true), ("bo", false)] {
        let mine: Vec<_> = rows
            .iter()
            .filter(|r| r.metadata.as_ref().unwrap()["rater"] == rater)
            .collect();
        assert_eq!(mine.len(), N);
        assert!(mine.iter().all(|r| r.label == label));
    }
}

/// A `kto-lab rate` process, killed (SIGKILL) and reaped when dropped, so a failing test leaves
/// no server behind.
struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `kto-lab rate` binary on a session folder written by hand (no model is loaded for an
/// existing session), and its URL.
fn start_binary(dir: &Path) -> (Served, String) {
    let url_file = dir.join("url");
    let _ = std::fs::remove_file(&url_file);
    let served = Served(
        Command::new(env!("CARGO_BIN_EXE_kto-lab"))
            .args(["rate", "--port", "0", "--dir"])
            .arg(dir)
            .arg("--url-file")
            .arg(&url_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("kto-lab rate starts"),
    );
    let started = Instant::now();
    loop {
        if let Ok(url) = std::fs::read_to_string(&url_file) {
            if url.ends_with('\n') {
                return (served, url.trim().to_string());
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no URL from kto-lab rate in 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kill_9_loses_no_acknowledged_vote() {
    let dir = tempfile::tempdir().unwrap();
    let n = 400;
    pool(n).save_new(&dir.path().join("pool.json")).unwrap();
    std::fs::write(
        dir.path().join("session.json"),
        r#"{"size":"classroom","model":"unused.safetensors","tokenizer":"unused.json"}"#,
    )
    .unwrap();
    let (served, url) = start_binary(dir.path());
    let (addr, token) = parse_url(&url);
    let host = addr.to_string();
    // Vote as fast as possible from a thread; kill -9 the server while it does.
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let voter = {
        let acked = acked.clone();
        let (host, token) = (host.clone(), token.clone());
        std::thread::spawn(move || {
            for i in 0..n {
                let body = format!(r#"{{"rater":"ana","answer":"a{i:03}","vote":"up"}}"#);
                let (status, _) = request(
                    addr,
                    "POST",
                    "/api/vote",
                    &[
                        ("Host", &host),
                        ("Content-Type", "application/json"),
                        ("X-Rate-Token", &token),
                    ],
                    &body,
                );
                if status != 200 {
                    break;
                }
                acked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        })
    };
    while acked.load(std::sync::atomic::Ordering::SeqCst) < 50 {
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(served); // SIGKILL (std's `kill` on Unix), then reaped
    voter.join().unwrap();
    let acked = acked.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        acked < n,
        "the server was killed after every vote: the test proves nothing"
    );
    let loaded = VoteLog::new(dir.path().join("votes.jsonl")).load().unwrap();
    // Every acknowledged vote is there; at most the one in flight more.
    assert!(
        loaded.clicks.len() == acked || loaded.clicks.len() == acked + 1,
        "{acked} acknowledged, {} in the log",
        loaded.clicks.len()
    );
    // A restart resumes after the last vote in the log.
    let (served, url) = start_binary(dir.path());
    let (addr, token) = parse_url(&url);
    let (_, body) = request(
        addr,
        "GET",
        "/api/state?rater=ana",
        &[("Host", &addr.to_string()), ("X-Rate-Token", &token)],
        "",
    );
    drop(served);
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        state["rated"].as_u64(),
        Some(loaded.clicks.len() as u64),
        "{state}"
    );
    assert_eq!(
        state["current"]["id"],
        format!("a{:03}", loaded.clicks.len())
    );
}

fn parse_url(url: &str) -> (SocketAddr, String) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, query) = rest.split_once("/?token=").expect("a token");
    (host.parse().expect("an address"), query.to_string())
}

#[test]
fn a_real_browser_rates_by_mouse_and_keyboard() {
    let dir = tempfile::tempdir().unwrap();
    let p = page(dir.path(), 10);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(root.join("scripts/check_rate_page.py"))
        .arg(p.url())
        .arg(dir.path().join("votes.jsonl"))
        .output()
        .expect("python3 runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{report}");
    if out.status.code() == Some(2) {
        assert!(
            std::env::var_os("CI").is_none(),
            "Chromium and chromedriver are required in CI:\n{report}"
        );
        eprintln!("skipped: no Chromium/chromedriver (apt-get install chromium chromium-driver)");
        return;
    }
    assert!(out.status.success(), "the browser check failed:\n{report}");
}
