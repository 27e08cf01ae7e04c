#!/usr/bin/env python3
"""Time the rating page (`kto-lab rate`) from a client's side, with and without --fsync.

Usage: bench_rate.py [--rounds N] [--votes N] [--binary PATH]

Each round starts the real server twice — default, then --fsync (the order alternates from
round to round) — on a fresh session folder with a hand-written pool (no model is loaded for
an existing session), and measures over loopback:

  first load   GET /?token=…, /page.css, /page.js on one new keep-alive connection (ms)
  round trip   N sequential votes on one keep-alive connection: median and p99 (ms); each vote
               is acknowledged only after its line is in votes.jsonl (and fsync'ed with --fsync)
  sustained    two raters voting at once, N votes each, one connection each: votes per second

Prints every round, then the medians over rounds. The client is Python's http.client; its own
cost is part of every number (a browser's fetch costs more). Build the server first:
cargo build --release --features rate.
"""

import argparse
import http.client
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def session(dir_, n):
    answers = [{"id": f"a{i:03}", "prompt": f"Question {i}?", "completion": f"Answer {i}."} for i in range(n)]
    (dir_ / "pool.json").write_text(json.dumps({"model": "a hand-written pool (benchmark)", "answers": answers}))
    (dir_ / "session.json").write_text('{"size":"classroom","model":"unused","tokenizer":"unused"}')


def start(binary, dir_, fsync):
    url_file = dir_ / "url"
    args = [binary, "rate", "--port", "0", "--dir", str(dir_), "--url-file", str(url_file)]
    if fsync:
        args.append("--fsync")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if url_file.exists() and url_file.read_text().endswith("\n"):
            url = url_file.read_text().strip()
            hostport, token = url[len("http://"):].split("/?token=")
            return proc, hostport, token
        time.sleep(0.01)
    proc.kill()
    raise SystemExit("the server gave no URL")


class Client:
    def __init__(self, hostport, token):
        host, port = hostport.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)
        self.headers = {
            "Host": hostport,
            "Origin": f"http://{hostport}",
            "Content-Type": "application/json",
            "X-Rate-Token": token,
        }
        self.token = token

    def get(self, path):
        self.conn.request("GET", path, headers={"Host": self.headers["Host"]})
        r = self.conn.getresponse()
        body = r.read()
        assert r.status == 200, (path, r.status, body[:200])

    def vote(self, rater, answer, vote="up"):
        body = json.dumps({"rater": rater, "answer": answer, "vote": vote})
        self.conn.request("POST", "/api/vote", body=body, headers=self.headers)
        r = self.conn.getresponse()
        data = r.read()
        assert r.status == 200, (r.status, data[:200])


def one_run(binary, n, fsync):
    with tempfile.TemporaryDirectory() as d:
        dir_ = Path(d)
        session(dir_, n)
        proc, hostport, token = start(binary, dir_, fsync)
        try:
            c = Client(hostport, token)
            t0 = time.perf_counter()
            c.get(f"/?token={token}")
            c.get("/page.css")
            c.get("/page.js")
            first_load = (time.perf_counter() - t0) * 1e3
            times = []
            for i in range(n):
                t = time.perf_counter()
                c.vote("solo", f"a{i:03}")
                times.append((time.perf_counter() - t) * 1e3)
            times.sort()
            p50 = statistics.median(times)
            p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
            clients = [Client(hostport, token) for _ in range(2)]
            errors = []

            def rater(k):
                try:
                    for i in range(n):
                        clients[k].vote(f"pair{k}", f"a{i:03}")
                except Exception as e:  # noqa: BLE001 — reported below
                    errors.append(e)

            threads = [threading.Thread(target=rater, args=(k,)) for k in range(2)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            sustained = 2 * n / (time.perf_counter() - t0)
            if errors:
                raise SystemExit(f"a vote failed: {errors[0]}")
            lines = (dir_ / "votes.jsonl").read_text().count("\n")
            assert lines == 3 * n, (lines, 3 * n)
            return {"first_load_ms": first_load, "p50_ms": p50, "p99_ms": p99, "votes_per_s": sustained}
        finally:
            proc.kill()
            proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--votes", type=int, default=500)
    ap.add_argument("--binary", default=str(ROOT / "target/release/kto-lab"))
    args = ap.parse_args()
    if not os.access(args.binary, os.X_OK):
        raise SystemExit(f"{args.binary}: build it first (cargo build --release --features rate)")
    results = {False: [], True: []}
    for r in range(args.rounds):
        order = [False, True] if r % 2 == 0 else [True, False]
        for fsync in order:
            res = one_run(args.binary, args.votes, fsync)
            results[fsync].append(res)
            print(
                f"round {r + 1} {'--fsync ' if fsync else 'default '}: first load {res['first_load_ms']:.2f} ms, "
                f"vote round trip median {res['p50_ms']:.3f} ms p99 {res['p99_ms']:.3f} ms, "
                f"two raters {res['votes_per_s']:.0f} votes/s",
                flush=True,
            )
    print()
    for fsync in (False, True):
        rs = results[fsync]
        med = {k: statistics.median(x[k] for x in rs) for k in rs[0]}
        print(
            f"median over {len(rs)} rounds, {'--fsync' if fsync else 'default'}: first load {med['first_load_ms']:.2f} ms, "
            f"round trip median {med['p50_ms']:.3f} ms, p99 {med['p99_ms']:.3f} ms, {med['votes_per_s']:.0f} votes/s"
        )


if __name__ == "__main__":
    main()
