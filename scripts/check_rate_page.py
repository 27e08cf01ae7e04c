#!/usr/bin/env python3
"""Rate answers on `kto-lab rate`'s page in headless Chromium, as a student would, and check
what the page shows and what the server wrote down.

Usage: check_rate_page.py URL LOG_PATH

URL is the page's full address, `?token=` included, of a server already running with a fresh
store at LOG_PATH, rater names not required, and at least 8 answers. The page is driven through
chromedriver (the W3C WebDriver protocol: plain HTTP and JSON, so nothing beyond Python's
standard library).

The rater `browser-test` rates answer 1 👍, 2 👎 and skips 3 with the mouse; rates 4 👍 with
the key `u`, 5 👎 with ArrowDown, 6 👍 with `u`; undoes that with `z` (6 is current again) and
rates it 👎 with `d`. After a reload the page must resume at answer 7 with 5 rated (2 up, 3 down)
and 1 skipped; typing shortcut letters into the name field must not vote. Then the page is
photographed at 1280 and 400 px wide (into $RATE_SCREENSHOTS, when set, as rate-1280.png and
rate-400.png) and must not scroll sideways at 400 px. Last, LOG_PATH (JSON Lines, one click a
line) must hold, for browser-test, exactly those clicks: 8 lines, the last vote per answer
{1: Up, 2: Down, 3: Clear, 4: Up, 5: Down, 6: Down}, an undo line on 6, and the prompts and
answers the page showed.

Prints one line per check and a closing `N passed, N failed` line; exit status 1 on any failure.
Exit status 2 when Chromium or chromedriver is missing (the caller decides whether that is a
skip or an error).

Needs: Debian's chromium and chromium-driver packages.
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

TIMEOUT = 20.0  # seconds, for any one wait
RATER = "browser-test"
# WebDriver's codes for the keys that are not characters.
ARROW_DOWN, ESCAPE = "\ue015", "\ue00c"


def find_chromium():
    # Debian's /usr/bin/chromium is a shell wrapper; chromedriver wants the binary itself.
    for candidate in ("/usr/lib/chromium/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(method, url, body=None, timeout=TIMEOUT, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")
        raise RuntimeError(f"{method} {url}: HTTP {e.code}: {detail[:500]}") from None


class Browser:
    """A headless Chromium session through chromedriver."""

    ELEMENT = "element-6066-11e4-a52e-4f735466cecf"

    def __init__(self, chromium, chromedriver):
        self.profile = tempfile.mkdtemp(prefix="kto-lab-rate-chromium-")
        port = free_port()
        self.driver = subprocess.Popen(
            [chromedriver, f"--port={port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                if request("GET", f"{self.base}/status", timeout=2)["value"].get("ready"):
                    break
            except (OSError, RuntimeError, KeyError):
                pass
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError("chromedriver did not start")
            time.sleep(0.2)
        args = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--window-size=1280,900", "--hide-scrollbars",
            "--force-color-profile=srgb", f"--user-data-dir={self.profile}",
        ]
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},  # the console, for CSP violations
        }}}
        try:
            self.session = request("POST", f"{self.base}/session", caps, timeout=60)["value"]["sessionId"]
        except Exception:
            self.close()
            raise
        self.url = f"{self.base}/session/{self.session}"

    def go(self, url):
        request("POST", f"{self.url}/url", {"url": url}, timeout=60)

    def js(self, script, *args):
        return request("POST", f"{self.url}/execute/sync",
                       {"script": script, "args": list(args)})["value"]

    def wait(self, script, *args):
        """Polls `script` until it returns something truthy; returns its last value."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            value = self.js(script, *args)
            if value or time.monotonic() > deadline:
                return value
            time.sleep(0.2)

    def element(self, css):
        v = request("POST", f"{self.url}/element", {"using": "css selector", "value": css})
        return v["value"][self.ELEMENT]

    def click(self, css):
        request("POST", f"{self.url}/element/{self.element(css)}/click", {})

    def type(self, css, text):
        request("POST", f"{self.url}/element/{self.element(css)}/value", {"text": text})

    def keys(self, *keys):
        """Presses and releases each key in turn, wherever the focus is (as a person would)."""
        actions = []
        for key in keys:
            actions += [{"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]
        request("POST", f"{self.url}/actions",
                {"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})
        request("DELETE", f"{self.url}/actions")

    def viewport(self, width, height):
        """Makes the page's viewport width x height CSS pixels; returns the width it got."""
        request("POST", f"{self.url}/window/rect", {"width": width, "height": height})
        got = self.js("return window.innerWidth")
        if got != width:
            # Window decorations or a minimum window width: emulate the viewport instead.
            request("POST", f"{self.url}/goog/cdp/execute", {
                "cmd": "Emulation.setDeviceMetricsOverride",
                "params": {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}})
            got = self.js("return window.innerWidth")
        return got

    def screenshot(self, path):
        png = request("GET", f"{self.url}/screenshot", timeout=60)["value"]
        Path(path).write_bytes(base64.b64decode(png))

    def console(self):
        """The browser console's entries since the last call (chromedriver's log endpoint)."""
        return request("POST", f"{self.url}/se/log", {"type": "browser"})["value"]

    def close(self):
        try:
            if getattr(self, "url", None):
                request("DELETE", self.url, timeout=10)
        except (OSError, RuntimeError):
            pass
        self.driver.terminate()
        try:
            self.driver.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.driver.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


# What the page shows: its view (loading, name, rating, done), whether a request is in flight,
# the current answer, the error area, the rater, the progress line and the undo button.
SNAPSHOT = r"""
const app = document.getElementById('app');
if (!app) { return null; }
const text = id => { const e = document.getElementById(id); return e ? e.textContent.trim() : null; };
const error = document.getElementById('error');
return {
  view: app.dataset.view, busy: app.dataset.busy, answer: app.dataset.answer || null,
  error: error && !error.hidden ? error.textContent.trim() : null,
  rater: text('rater-name'), progress: text('progress-text'),
  prompt: text('prompt'), completion: text('completion'), model: text('model'),
  undo_disabled: document.getElementById('undo').disabled,
  focus: document.activeElement ? (document.activeElement.id || document.activeElement.tagName) : null,
};
"""


class Check:
    def __init__(self):
        self.passed, self.failed = 0, 0

    def __call__(self, ok, what):
        print(("ok   " if ok else "FAIL ") + what, flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        return ok


def settle(browser, done):
    """Waits until no request is in flight and `done(snapshot)` holds, or an error shows."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        snap = browser.js(SNAPSHOT) or {}
        if snap.get("busy") == "false" and (snap.get("error") or done(snap)):
            return snap
        if time.monotonic() > deadline:
            return snap
        time.sleep(0.1)


def describe(snap):
    parts = [f"view {snap.get('view')}", f"answer {snap.get('answer')}"]
    if snap.get("error"):
        parts.append(f"error {snap['error']!r}")
    return ", ".join(parts)


def read_log(path):
    rows, bad = [], []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            bad.append(number)
    return rows, bad


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[3], file=sys.stderr)
        return 1
    page_url, log_path = sys.argv[1], Path(sys.argv[2])
    parts = urllib.parse.urlsplit(page_url)
    token = urllib.parse.parse_qs(parts.query).get("token", [""])[0]
    if not token:
        print(f"{page_url}: no ?token= in the URL", file=sys.stderr)
        return 1
    origin = f"{parts.scheme}://{parts.netloc}"
    chromium = find_chromium()
    chromedriver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if os.path.isfile("/usr/bin/chromedriver") else None)
    if not chromium or not chromedriver:
        print("chromium or chromedriver not found "
              "(apt-get install chromium chromium-driver)", file=sys.stderr)
        return 2

    def api_state():
        query = urllib.parse.urlencode({"rater": RATER})
        return request("GET", f"{origin}/api/state?{query}", headers={"X-Rate-Token": token})

    check = Check()
    browser = Browser(chromium, chromedriver)
    shown = []  # (id, prompt, completion) of answers 1 to 7, as the page showed them
    try:
        # A fresh browser: no name stored, so the page asks for one.
        browser.go(page_url)
        snap = settle(browser, lambda s: s.get("view") == "name")
        check(snap.get("view") == "name", f"a new rater is asked for a name ({describe(snap)})")
        check(bool(snap.get("model")) and snap["model"] != "the model being trained",
              f"the footer names the model that wrote the answers ({snap.get('model')!r})")
        browser.type("#rater-input", RATER)
        browser.click("#start")
        snap = settle(browser, lambda s: s.get("view") == "rating" and s.get("answer"))
        if not check(snap.get("view") == "rating" and snap.get("rater") == RATER,
                     f"Start shows the first answer, rating as {snap.get('rater')!r} ({describe(snap)})"):
            raise RuntimeError("the page did not start")
        check(snap.get("undo_disabled") is True, "Undo is disabled before any vote")
        labels = browser.js(
            "return ['vote-up','vote-down','vote-skip','undo'].map(id => "
            "document.getElementById(id).getAttribute('aria-label') || '')")
        check(all("shortcut" in label for label in labels),
              f"the four buttons have accessible names ({'; '.join(labels)})")
        check(browser.js("return document.getElementById('announce').getAttribute('aria-live')") == "polite",
              "a polite live region announces changes")
        styled = browser.js("return getComputedStyle(document.getElementById('app')).maxWidth")
        check(styled == "760px", f"page.css applies (the card's max-width is {styled!r})")

        steps = [("click", "#vote-up", "👍 by mouse"), ("click", "#vote-down", "👎 by mouse"),
                 ("click", "#vote-skip", "skip by mouse"), ("key", "u", "👍 with key u"),
                 ("key", ARROW_DOWN, "👎 with ArrowDown"), ("key", "u", "👍 with key u")]
        for number, (how, what, words) in enumerate(steps, 1):
            shown.append((snap["answer"], snap["prompt"], snap["completion"]))
            before = snap["answer"]
            if how == "click":
                browser.click(what)
            else:
                browser.keys(what)
            snap = settle(browser, lambda s, b=before: s.get("answer") not in (None, b))
            if not check(snap.get("answer") not in (None, before) and not snap.get("error"),
                         f"answer {number} ({before}) {words}: the next answer shows ({describe(snap)})"):
                raise RuntimeError(f"answer {number} was not rated")

        browser.keys("z")
        sixth = shown[5][0]
        snap = settle(browser, lambda s: s.get("answer") == sixth)
        check(snap.get("answer") == sixth and not snap.get("error"),
              f"undo with key z makes answer 6 ({sixth}) current again ({describe(snap)})")
        browser.keys("d")
        snap = settle(browser, lambda s: s.get("answer") not in (None, sixth))
        if not check(snap.get("answer") not in (None, sixth) and not snap.get("error"),
                     f"answer 6 ({sixth}) 👎 with key d: the next answer shows ({describe(snap)})"):
            raise RuntimeError("answer 6 was not rated again")
        shown.append((snap["answer"], snap["prompt"], snap["completion"]))
        seventh = snap["answer"]
        check(len({s[0] for s in shown}) == 7, f"seven different answers shown: {[s[0] for s in shown]}")

        # A reload resumes: the server holds the place, the browser the name.
        browser.go(page_url)
        snap = settle(browser, lambda s: s.get("view") == "rating" and s.get("answer"))
        check(snap.get("rater") == RATER and snap.get("answer") == seventh,
              f"after a reload {RATER} resumes at answer 7 ({seventh}) ({describe(snap)}, "
              f"rater {snap.get('rater')!r})")
        progress = snap.get("progress") or ""
        check("5 rated" in progress and "1 skipped" in progress and "👍 40%" in progress,
              f"the progress reads 5 rated, 1 skipped, 👍 40% ({progress!r})")
        state = api_state()
        check((state.get("rated"), state.get("up"), state.get("down"), state.get("skipped"))
              == (5, 2, 3, 1) and (state.get("current") or {}).get("id") == seventh,
              f"the server's state agrees: rated {state.get('rated')}, up {state.get('up')}, "
              f"down {state.get('down')}, skipped {state.get('skipped')}, "
              f"current {(state.get('current') or {}).get('id')}")

        # Shortcut letters typed into a text field are letters, not votes.
        browser.click("#change-name")
        snap = settle(browser, lambda s: s.get("view") == "name")
        browser.type("#rater-input", "udsz")
        browser.keys(ARROW_DOWN, "\ue003")  # ArrowDown, Backspace: in the field, not votes
        browser.keys(ESCAPE)
        snap = settle(browser, lambda s: s.get("view") == "rating")
        after = api_state()
        check(snap.get("view") == "rating" and snap.get("answer") == seventh
              and snap.get("rater") == RATER and after.get("rated") == 5
              and after.get("skipped") == 1 and after.get("can_undo") is True
              and after.get("last") == state.get("last"),
              f"keys typed into the name field do not vote; Escape goes back ({describe(snap)})")

        # How it looks, and no sideways scrolling on a narrow screen.
        folder = os.environ.get("RATE_SCREENSHOTS")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
        browser.js("if (document.activeElement) { document.activeElement.blur(); }")
        for width in (1280, 400):
            got = browser.viewport(width, 900)
            time.sleep(0.3)  # let layout and the progress bar's transition settle
            scroll = browser.js("return document.documentElement.scrollWidth")
            if width == 400:
                check(got == 400 and scroll <= 400,
                      f"no horizontal scroll at 400 px (viewport {got}, scrollWidth {scroll})")
            if folder:
                target = Path(folder) / f"rate-{width}.png"
                browser.screenshot(target)
                print(f"     screenshot: {target}")
    except Exception as e:  # noqa: BLE001 - report and count, then stop
        check(False, f"the page could not be driven to the end: {e}")
    finally:
        try:
            # Blocked inline code or style (the server's Content-Security-Policy) and script
            # errors; a missing favicon and the like are network entries, not counted.
            bad = [f"{e.get('source')}: {e.get('message', '')[:300]}" for e in browser.console()
                   if e.get("source") in ("security", "javascript")
                   or "Content Security Policy" in e.get("message", "")]
            check(not bad, "no CSP violation or script error in the console"
                  + (f": {bad}" if bad else ""))
        except (OSError, RuntimeError, KeyError) as e:
            print(f"     note: the browser console could not be read ({e})")
        browser.close()

    # What the server wrote down, click by click.
    try:
        rows, bad = read_log(log_path)
    except OSError as e:
        rows, bad = None, []
        check(False, f"{log_path}: cannot read the store ({e})")
    if rows is not None:
        check(not bad, f"{log_path}: every line is JSON" + (f" (bad lines: {bad})" if bad else ""))
        mine = [r for r in rows if isinstance(r, dict) and r.get("rater") == RATER]
        check(len(mine) == 8, f"{len(mine)} lines for {RATER}: expected 8 (6 votes, 1 undo, 1 vote)")
        ids = [s[0] for s in shown[:6]]
        if len(ids) == 6:
            last = {}
            for r in mine:
                last[r.get("answer")] = r.get("vote")
            expected = dict(zip(ids, ["Up", "Down", "Clear", "Up", "Down", "Down"]))
            check(last == expected, f"last vote per answer: {last} (expected {expected})")
            third = [r for r in mine if r.get("answer") == ids[2]]
            check(len(third) == 1 and third[0].get("vote") == "Clear" and "undo" not in third[0],
                  f"the skip of answer 3 ({ids[2]}) is one \"Clear\" line without undo: {third}")
            undos = [r for r in mine if "undo" in r]
            check(len(undos) == 1 and undos[0].get("answer") == ids[5] and undos[0].get("undo") is True,
                  f"one undo line, on answer 6 ({ids[5]}): {[(r.get('answer'), r.get('vote')) for r in undos]}")
            # The page shows the text as is; only the ends' white space is not compared.
            texts = {s[0]: ((s[1] or "").strip(), (s[2] or "").strip()) for s in shown}
            wrong = [r.get("answer") for r in mine
                     if (str(r.get("prompt")).strip(), str(r.get("completion")).strip())
                     != texts.get(r.get("answer"))]
            check(not wrong, "each line holds the prompt and answer the page showed"
                  + (f" (not: {wrong})" if wrong else ""))
            typed = [r.get("answer") for r in mine if not isinstance(r.get("time_ms"), int)
                     or isinstance(r.get("time_ms"), bool)]
            check(not typed, "each line has an integer time_ms" + (f" (not: {typed})" if typed else ""))
        else:
            check(False, f"the answers' ids were not all seen ({ids}): cannot check the store")
    print(f"{check.passed} passed, {check.failed} failed")
    return 0 if check.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
