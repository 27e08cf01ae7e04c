//! The page's HTTP surface: one function routes every request, checks it, and answers in JSON.
//!
//! | method, path | needs | answers |
//! |---|---|---|
//! | `GET /?token=T` | host, token | the page |
//! | `GET /page.css`, `GET /page.js` | host | the page's style and script |
//! | `GET /api/config` | host, token | `{names_required, total, title, model, recorded}` |
//! | `GET /api/state?rater=R` | host, token | the rater's state |
//! | `POST /api/vote` `{rater, answer, vote}` | host, origin, JSON, token | the new state |
//! | `POST /api/undo` `{rater}` | host, origin, JSON, token | the new state |

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{Shared, MAX_BODY};
use crate::feedback::{check_rater_name, Choice};

const INDEX: &str = include_str!("assets/index.html");
const CSS: &str = include_str!("assets/page.css");
const JS: &str = include_str!("assets/page.js");

/// A refused request: its status and one line saying why.
struct Refusal(StatusCode, String);

impl Refusal {
    fn new(status: StatusCode, why: impl Into<String>) -> Self {
        Refusal(status, why.into())
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.1 }).to_string();
        respond(self.0, "application/json", body)
    }
}

/// A response with the headers every answer carries: nothing cached (the URL holds the token),
/// no sniffing, no framing, no referrer, scripts and styles from this server only.
fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Body>) -> Response {
    let mut response = (status, body.into()).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'; form-action 'none'; base-uri 'none'",
        ),
    );
    response
}

fn json(value: serde_json::Value) -> Response {
    respond(StatusCode::OK, "application/json", value.to_string())
}

/// Every request comes here.
pub(super) async fn dispatch(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    match route(&shared, request).await {
        Ok(response) => response,
        Err(refusal) => refusal.into_response(),
    }
}

async fn route(shared: &Arc<Shared>, request: Request) -> Result<Response, Refusal> {
    check_host(shared, request.headers())?;
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let query = parse_query(request.uri().query().unwrap_or(""))?;
    match (method, path.as_str()) {
        (Method::GET, "/") => {
            if !same_token(query.get("token").map(String::as_str), &shared.token) {
                // A person reads this one: plain text.
                return Ok(respond(
                    StatusCode::FORBIDDEN,
                    "text/plain; charset=utf-8",
                    "This page needs the token printed with its URL: open the whole link \
                     that `kto-lab rate` printed (…/?token=…).\n",
                ));
            }
            Ok(respond(StatusCode::OK, "text/html; charset=utf-8", INDEX))
        }
        // Browsers ask for it on every page: no icon, and no error in the console.
        (Method::GET, "/favicon.ico") => Ok(respond(StatusCode::NO_CONTENT, "image/x-icon", "")),
        (Method::GET, "/page.css") => Ok(respond(StatusCode::OK, "text/css; charset=utf-8", CSS)),
        (Method::GET, "/page.js") => Ok(respond(
            StatusCode::OK,
            "text/javascript; charset=utf-8",
            JS,
        )),
        (Method::GET, "/api/config") => {
            check_token(shared, request.headers())?;
            Ok(json(serde_json::json!({
                "names_required": shared.names_required,
                "total": shared.pool.answers.len(),
                "title": "Rate the model's answers",
                "model": shared.pool.model,
            })))
        }
        (Method::GET, "/api/state") => {
            check_token(shared, request.headers())?;
            let rater = rater_name(shared, query.get("rater").map(String::as_str))?;
            Ok(json(shared.state(&rater)))
        }
        (Method::POST, "/api/vote") => {
            check_write(shared, request.headers())?;
            let body: VoteBody = read_json(request).await?;
            let rater = rater_name(shared, body.rater.as_deref())?;
            let answer = shared.pool.get(&body.answer).ok_or_else(|| {
                Refusal::new(
                    StatusCode::NOT_FOUND,
                    format!("no answer {:?} in this session", truncate(&body.answer)),
                )
            })?;
            let shared = Arc::clone(shared);
            let answer = answer.clone();
            blocking(move || shared.vote(&rater, &answer, body.vote)).await
        }
        (Method::POST, "/api/undo") => {
            check_write(shared, request.headers())?;
            let body: UndoBody = read_json(request).await?;
            let rater = rater_name(shared, body.rater.as_deref())?;
            let shared = Arc::clone(shared);
            let undone = tokio::task::spawn_blocking(move || shared.undo(&rater))
                .await
                .map_err(|_| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "the undo failed"))?;
            match undone {
                Ok(Some(state)) => Ok(json(state)),
                Ok(None) => Err(Refusal::new(StatusCode::CONFLICT, "nothing to undo")),
                Err(e) => Err(store_error(e)),
            }
        }
        (
            _,
            "/" | "/page.css" | "/page.js" | "/api/config" | "/api/state" | "/api/vote"
            | "/api/undo",
        ) => Err(Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not allowed on {path}", request.method()),
        )),
        _ => Err(Refusal::new(
            StatusCode::NOT_FOUND,
            format!("no such page: {}", truncate(&path)),
        )),
    }
}

/// Runs a log append off the async workers (it takes a file lock, and `fsync` with `--fsync`).
async fn blocking(
    job: impl FnOnce() -> Result<serde_json::Value, super::Refused> + Send + 'static,
) -> Result<Response, Refusal> {
    match tokio::task::spawn_blocking(job).await {
        Ok(Ok(state)) => Ok(json(state)),
        Ok(Err(super::Refused::NotCurrent(id))) => Err(Refusal::new(
            StatusCode::CONFLICT,
            format!("answer {id} is not the one to rate now (rated in another tab?): nothing saved, the page reloads your place"),
        )),
        Ok(Err(super::Refused::Store(e))) => Err(store_error(e)),
        Err(_) => Err(Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the vote was not saved (the writer stopped)",
        )),
    }
}

fn store_error(e: crate::feedback::FeedbackError) -> Refusal {
    eprintln!("kto-lab rate: {e}");
    Refusal::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("the vote was not saved: {e}"),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VoteBody {
    #[serde(default)]
    rater: Option<String>,
    answer: String,
    vote: Choice,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UndoBody {
    #[serde(default)]
    rater: Option<String>,
}

/// The body as JSON of type `T`, at most [`MAX_BODY`] bytes.
async fn read_json<T: serde::de::DeserializeOwned>(request: Request) -> Result<T, Refusal> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let bytes = to_bytes(request.into_body(), MAX_BODY)
        .await
        .map_err(|_| too_large())?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not the JSON expected: {e}"),
        )
    })
}

fn too_large() -> Refusal {
    Refusal::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is over {MAX_BODY} bytes"),
    )
}

/// The rater's name as given, or `anonymous` when names are optional and none was given.
fn rater_name(shared: &Shared, given: Option<&str>) -> Result<String, Refusal> {
    let name = match given.map(str::trim) {
        Some(n) if !n.is_empty() => n,
        _ if shared.names_required => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "this session needs a rater name (rater)",
            ))
        }
        _ => "anonymous",
    };
    check_rater_name(name).map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, e))?;
    Ok(name.to_string())
}

/// `Host` must be `localhost` or an IP address, with this server's port: a DNS-rebinding page
/// sends its own host name.
fn check_host(shared: &Shared, headers: &HeaderMap) -> Result<(), Refusal> {
    let host = host(headers);
    if host_is_ours(host, shared.port) {
        Ok(())
    } else {
        Err(Refusal::new(
            StatusCode::MISDIRECTED_REQUEST,
            format!("Host {:?} is not this server", truncate(host)),
        ))
    }
}

fn check_token(shared: &Shared, headers: &HeaderMap) -> Result<(), Refusal> {
    let given = headers.get("x-rate-token").and_then(|v| v.to_str().ok());
    if same_token(given, &shared.token) {
        Ok(())
    } else {
        Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "missing or wrong X-Rate-Token (the token is in the URL kto-lab rate printed)",
        ))
    }
}

fn host(headers: &HeaderMap) -> &str {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
}

/// `localhost:PORT`, `a.b.c.d:PORT` or `[v6]:PORT`, with our port.
fn host_is_ours(host: &str, port: u16) -> bool {
    let Some((name, p)) = host.rsplit_once(':') else {
        return false;
    };
    if p.parse::<u16>().ok() != Some(port) {
        return false;
    }
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::Ipv4Addr>().is_ok()
        || name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .is_some_and(|n| n.parse::<std::net::Ipv6Addr>().is_ok())
}

/// A write: JSON only (a cross-site form cannot send it), the browser's `Origin` (when sent)
/// the page's own, and the token.
fn check_write(shared: &Shared, headers: &HeaderMap) -> Result<(), Refusal> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let ours = origin
            .strip_prefix("http://")
            .is_some_and(|o| o.eq_ignore_ascii_case(host(headers)));
        if !ours {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                format!("Origin {:?} is not this page", truncate(origin)),
            ));
        }
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a write must be Content-Type: application/json",
        ));
    }
    check_token(shared, headers)
}

/// Compares in time independent of where the strings differ.
fn same_token(given: Option<&str>, token: &str) -> bool {
    let Some(given) = given else { return false };
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// `a=1&b=2` decoded; a malformed query is refused.
fn parse_query(query: &str) -> Result<HashMap<String, String>, Refusal> {
    let mut out = HashMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_decode(&s.replace('+', " ")).ok_or_else(|| {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "the query string is not valid UTF-8 percent-encoding",
                )
            })
        };
        out.insert(decode(k)?, decode(v)?);
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// At most 60 characters of something a client sent, for an error message.
fn truncate(s: &str) -> String {
    let mut t: String = s.chars().take(60).collect();
    if s.chars().count() > 60 {
        t.push('…');
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_and_bad_ones_are_refused() {
        let q = parse_query("rater=Ana%20B.&token=ab+c").ok().unwrap();
        assert_eq!(q["rater"], "Ana B.");
        assert_eq!(q["token"], "ab c");
        assert!(parse_query("rater=%zz").is_err());
        assert!(parse_query("rater=%ff").is_err());
        assert!(parse_query("rater=%4").is_err());
    }

    #[test]
    fn hosts_are_localhost_or_addresses_with_our_port() {
        for ok in [
            "127.0.0.1:8737",
            "localhost:8737",
            "LOCALHOST:8737",
            "[::1]:8737",
            "192.168.1.20:8737",
        ] {
            assert!(host_is_ours(ok, 8737), "{ok}");
        }
        for bad in [
            "evil.example:8737",
            "127.0.0.1:80",
            "127.0.0.1",
            "",
            "[::1:8737",
            "localhost.evil.example:8737",
            "127.0.0.1.nip.io:8737",
        ] {
            assert!(!host_is_ours(bad, 8737), "{bad}");
        }
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token(Some("abc"), "abc"));
        assert!(!same_token(Some("abd"), "abc"));
        assert!(!same_token(Some("ab"), "abc"));
        assert!(!same_token(None, "abc"));
    }
}
