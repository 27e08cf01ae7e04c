#!/usr/bin/env python3
"""Open the built book in headless Chromium and check what a reader sees.

Usage: check_book.py BOOK_HTML_DIR

BOOK_HTML_DIR is what `mdbook build book -d DIR` wrote. The book is served over HTTP on
127.0.0.1 (search and file:// behave differently) and driven through chromedriver (the W3C
WebDriver protocol: plain HTTP and JSON, so nothing beyond Python's standard library).

Checks, on every chapter page (every .html but print.html, toc.html and 404.html):
  1. math is typeset: no `$`, `\\(`, `\\[` or TeX command (`\\frac`) left in the text outside
     code, and every <math> element has a size on the page and nothing but MathML inside;
  2. every <img> in the chapter loaded (complete, naturalWidth > 0);
  3. every relative link in the chapter points at a page or file the server has;
and once: the search box (opened with its button, then typed into) finds "mismatched", with a
result linking to lab 1.

Prints one line per check and a closing `N passed, N failed` line; exit status 1 on any failure.
Exit status 2 when Chromium or chromedriver is missing (the caller decides whether that is a
skip or an error).

Needs: Debian's chromium and chromium-driver packages.
"""

import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

SKIP_PAGES = {"print.html", "toc.html", "404.html"}
TIMEOUT = 20.0  # seconds, for any one wait


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


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # The browser drops connections it no longer needs (a page left mid-load): not an error.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def serve(root):
    handler = functools.partial(Quiet, directory=str(root))
    server = Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def request(method, url, body=None, timeout=TIMEOUT):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
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
        self.profile = tempfile.mkdtemp(prefix="kto-lab-book-chromium-")
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
            "--disable-dev-shm-usage", "--window-size=1280,900",
            f"--user-data-dir={self.profile}",
        ]
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
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


# What a reader would see of the chapter's text, outside code and rendered math.
PAGE_REPORT = r"""
const main = document.querySelector('main');
if (!main) { return null; }
const copy = main.cloneNode(true);
copy.querySelectorAll('pre, code, math, script, style').forEach(e => e.remove());
const text = copy.textContent;
const raw = [];
const command = text.search(/\\[A-Za-z]{2,}/);  // a TeX command like \frac left as text
for (const at of [text.indexOf('$'), text.indexOf('\\('), text.indexOf('\\['), command]) {
  if (at >= 0) { raw.push(text.slice(Math.max(0, at - 40), at + 40).replace(/\s+/g, ' ')); }
}
const MATHML = 'http://www.w3.org/1998/Math/MathML';
const maths = Array.from(main.querySelectorAll('math'));
// A formula with no size, or with HTML inside it (Markdown got into it), is not typeset.
const flat = maths.filter(m => {
  const r = m.getBoundingClientRect();
  const foreign = Array.from(m.querySelectorAll('*')).some(e => e.namespaceURI !== MATHML);
  return foreign || !(r.width > 0 && r.height > 0); });
const images = Array.from(main.querySelectorAll('img')).map(i => ({
  src: i.getAttribute('src'), complete: i.complete, width: i.naturalWidth }));
const links = Array.from(main.querySelectorAll('a[href]')).map(a => a.getAttribute('href'));
return {raw: raw, maths: maths.length, flat: flat.length, images: images, links: links};
"""


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 1
    root = Path(sys.argv[1])
    if not (root / "index.html").is_file():
        print(f"{root}: no index.html (run `mdbook build book -d {root}` first)", file=sys.stderr)
        return 1
    chromium = find_chromium()
    chromedriver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if os.path.isfile("/usr/bin/chromedriver") else None)
    if not chromium or not chromedriver:
        print("chromium or chromedriver not found "
              "(apt-get install chromium chromium-driver)", file=sys.stderr)
        return 2

    pages = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.html")
                   if p.name not in SKIP_PAGES)
    server = serve(root)
    site = f"http://127.0.0.1:{server.server_address[1]}/"
    passed, failed = 0, 0

    def result(ok, what):
        nonlocal passed, failed
        print(("ok   " if ok else "FAIL ") + what)
        if ok:
            passed += 1
        else:
            failed += 1

    browser = Browser(chromium, chromedriver)
    try:
        total_maths = 0
        for page in pages:
            url = urllib.parse.urljoin(site, page)
            browser.go(url)
            browser.wait("return document.readyState === 'complete'")
            # Images may still be decoding after the load event.
            browser.wait("return Array.from(document.querySelectorAll('main img')).every(i => i.complete)")
            r = browser.js(PAGE_REPORT)
            if r is None:
                result(False, f"{page}: no <main> element")
                continue
            total_maths += r["maths"]
            result(not r["raw"] and r["flat"] == 0,
                   f"{page}: math typeset ({r['maths']} formulas"
                   + (f"; {r['flat']} broken or with no size" if r["flat"] else "")
                   + (f"; raw TeX left: {r['raw']}" if r["raw"] else "") + ")")
            if r["images"]:
                bad = [i["src"] for i in r["images"] if not (i["complete"] and i["width"] > 0)]
                result(not bad, f"{page}: {len(r['images'])} <img> elements loaded"
                       + (f"; broken: {bad}" if bad else ""))
            broken = []
            for href in r["links"]:
                target = urllib.parse.urljoin(url, href)
                if not target.startswith(site):
                    continue  # another site: not ours to check (and no network here)
                target = target.split("#", 1)[0]
                try:
                    with urllib.request.urlopen(target, timeout=TIMEOUT) as resp:
                        if resp.status != 200:
                            broken.append(href)
                except (urllib.error.URLError, OSError):
                    broken.append(href)
            result(not broken, f"{page}: {len(r['links'])} links resolve"
                   + (f"; broken: {broken}" if broken else ""))
        result(total_maths > 0, f"the book has typeset math ({total_maths} formulas in all)")

        # The search box, as a reader uses it: the button, then typing.
        browser.go(urllib.parse.urljoin(site, "index.html"))
        browser.wait("return document.readyState === 'complete'")
        browser.click("#mdbook-search-toggle")
        browser.wait("const b = document.getElementById('mdbook-searchbar');"
                     "return b && b.offsetParent !== null")
        browser.type("#mdbook-searchbar", "mismatched")
        hits = browser.wait(
            "return Array.from(document.querySelectorAll('#mdbook-searchresults li a'))"
            ".map(a => a.getAttribute('href'))")
        lab1 = [h for h in hits or [] if "01_kto_loss" in h]
        result(bool(lab1), f"search finds \"mismatched\" ({len(hits or [])} results"
               + (f", lab 1 among them" if lab1 else ", none in lab 1") + ")")
    finally:
        browser.close()
        server.shutdown()
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
