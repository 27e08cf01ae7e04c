//! System calls the sandbox's layers share: the report's notes, errors, paths, pipes.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::REPORT_PREFIX;

/// Where the layers' outcomes go: one line each into a pipe to the supervisor, which writes
/// them to the report file; failures also on stderr.
pub(super) struct Notes {
    pub(super) fd: libc::c_int,
}

impl Notes {
    pub(super) fn ok(&self, what: &str) {
        self.line(&format!("enforced: {what}"));
    }
    pub(super) fn missing(&self, what: &str) {
        let line = format!("not enforced: {what}");
        eprintln!("{REPORT_PREFIX}{line}");
        self.line(&line);
    }
    pub(super) fn check(&self, what: &str, r: Result<(), String>) {
        match r {
            Ok(()) => self.ok(what),
            Err(e) => self.missing(&format!("{what} ({e})")),
        }
    }
    pub(super) fn line(&self, line: &str) {
        if self.fd >= 0 {
            let l = format!("{line}\n");
            write_all(self.fd, l.as_bytes());
        }
    }
}

pub(super) fn write_all(fd: libc::c_int, mut b: &[u8]) {
    while !b.is_empty() {
        // SAFETY: b is a valid buffer.
        let n = unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) };
        if n <= 0 {
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            return;
        }
        b = &b[n as usize..];
    }
}

pub(super) fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

pub(super) fn os_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

pub(super) fn cpath(p: &Path) -> Result<CString, String> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| format!("{}: NUL in path", p.display()))
}

pub(super) fn pipe() -> Option<[libc::c_int; 2]> {
    let mut fds = [-1; 2];
    // SAFETY: fds has room for two.
    (unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == 0).then_some(fds)
}

pub(super) fn close(fd: libc::c_int) {
    if fd >= 0 {
        // SAFETY: closing a descriptor this module opened.
        unsafe { libc::close(fd) };
    }
}
