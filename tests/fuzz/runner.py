"""The crash-isolating runner: worker processes run cases (cases.run_case) one
seed at a time and answer on a pipe; the parent gives each call a deadline.
A worker that dies by a signal is a crash, one past its deadline a hang
(killed and replaced), and one whose stderr carries an AddressSanitizer or
UBSan report (or that exits with the sanitizers' exit code) a sanitizer
report. Not the cases themselves (cases.py).

Run through ``python -m tests.fuzz`` (``__main__.py``).
"""

from __future__ import annotations

import collections
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SANITIZER_EXIT = 99  # .ci/sanitize sets ASAN_OPTIONS/UBSAN_OPTIONS exitcode=99
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer", "SUMMARY: UndefinedBehaviorSanitizer")


def worker_main() -> None:
    """Read seeds (one per line) on stdin, answer one JSON line per seed."""
    sys.path.insert(0, ROOT)
    from tests.fuzz.cases import run_case

    import rnnkit

    rnnkit.set_num_threads(int(os.environ.get("RNNKIT_FUZZ_THREADS", "1")))
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        seed = int(line)
        t0 = time.perf_counter()
        entry, outcome = run_case(seed)
        out.write(json.dumps({"seed": seed, "entry": entry, "outcome": outcome, "s": time.perf_counter() - t0}) + "\n")
        out.flush()


def sanitizer_excerpt(err: str) -> str:
    """The report from its first line (the kind and place of the error) on."""
    at = min((i for i in (err.find(m) for m in SANITIZER_MARKS) if i >= 0), default=0)
    start = err.rfind("\n", 0, at) + 1
    return err[start : start + 1500]


class Worker:
    def __init__(self, env):
        self.err = tempfile.TemporaryFile(mode="w+b")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from tests.fuzz.runner import worker_main; worker_main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.err,
            cwd=ROOT,
            env=env,
            bufsize=0,
        )
        self.buf = b""
        self.seed = None
        self.deadline = None
        self.ready = False
        self.err_seen = 0

    def fileno(self):
        return self.proc.stdout.fileno()

    def send(self, seed, timeout):
        self.seed = seed
        self.deadline = time.monotonic() + timeout
        self.proc.stdin.write(f"{seed}\n".encode())
        self.proc.stdin.flush()

    def read_lines(self):
        chunk = os.read(self.fileno(), 65536)
        if not chunk:
            return None
        self.buf += chunk
        *lines, self.buf = self.buf.split(b"\n")
        return [ln.decode() for ln in lines]

    def new_stderr(self) -> str:
        self.err.flush()
        self.err.seek(self.err_seen)
        data = self.err.read()
        self.err_seen += len(data)
        self.err.seek(0, 2)
        return data.decode(errors="replace")

    def kill(self):
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass
        self.proc.wait()


def campaign(calls, *, workers=2, start=0, timeout=60.0, env=None, progress=None, log=None):
    """Run seeds start..start+calls-1. Returns a report dict: counts by entry
    point and outcome, and the seeds of every finding by class."""
    from tests.fuzz.cases import entry_point_of

    import rnnkit

    env = dict(os.environ if env is None else env)
    # Workers import the rnnkit this process imported (source tree or site-packages).
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(rnnkit.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([pkg, ROOT, env.get("PYTHONPATH", "")])
    counts = collections.Counter()
    findings = collections.defaultdict(list)
    seeds = iter(range(start, start + calls))
    pool = [Worker(env) for _ in range(workers)]
    done = 0
    t0 = time.monotonic()
    last = t0

    def record(entry, outcome, seed, detail=""):
        nonlocal done
        done += 1
        kind = outcome.split(":")[0]
        counts[(entry, kind)] += 1
        cls = None
        if outcome.startswith("WRONG"):
            cls = "silent wrong answer"
        elif outcome.startswith("OFF-CONTRACT"):
            cls = "off-contract exception"
        elif outcome in ("CRASH", "HANG", "SANITIZER"):
            cls = {"CRASH": "crash", "HANG": "hang", "SANITIZER": "sanitizer report"}[outcome]
        if cls:
            findings[cls].append({"seed": seed, "entry": entry, "detail": (outcome + " " + detail)[:2000]})
            if log:
                log.write(json.dumps({"class": cls, "seed": seed, "entry": entry, "detail": detail[:2000]}) + "\n")
                log.flush()

    def replace(w):
        w.kill()
        nw = Worker(env)
        pool[pool.index(w)] = nw
        return nw

    pending, inflight = calls, 0
    try:
        while pending > 0 or inflight > 0:
            readable, _, _ = select.select(pool, [], [], 0.5)
            for w in readable:
                lines = w.read_lines()
                if lines is None:  # EOF: the worker died
                    rc = w.proc.wait()
                    err = w.new_stderr()
                    if w.seed is not None:
                        inflight -= 1
                        entry = entry_point_of(w.seed)
                        if rc == SANITIZER_EXIT or any(m in err for m in SANITIZER_MARKS):
                            record(entry, "SANITIZER", w.seed, sanitizer_excerpt(err))
                        elif rc < 0:
                            name = signal.Signals(-rc).name
                            record(entry, "CRASH", w.seed, f"signal {-rc} {name}: {err[-1500:]}")
                        else:
                            record(entry, "CRASH", w.seed, f"exit {rc}: {err[-1500:]}")
                    elif not w.ready:
                        raise RuntimeError(f"a fuzz worker failed to start (rc {rc}):\n{err[-3000:]}")
                    replace(w)
                    continue
                for ln in lines:
                    if ln == "ready":
                        w.ready = True
                        continue
                    res = json.loads(ln)
                    inflight -= 1
                    w.seed = None
                    err = w.new_stderr()
                    if any(m in err for m in SANITIZER_MARKS):
                        record(res["entry"], "SANITIZER", res["seed"], sanitizer_excerpt(err))
                    else:
                        record(res["entry"], res["outcome"], res["seed"], res["outcome"])
            now = time.monotonic()
            for w in list(pool):
                if w.seed is not None and now > w.deadline:
                    inflight -= 1
                    record(entry_point_of(w.seed), "HANG", w.seed, f"no answer in {timeout:g} s")
                    replace(w)
            for w in pool:
                if pending > 0 and w.ready and w.seed is None and w.proc.poll() is None:
                    w.send(next(seeds), timeout)
                    pending -= 1
                    inflight += 1
            if progress and now - last > progress:
                last = now
                rate = done / max(now - t0, 1e-9)
                n = sum(map(len, findings.values()))
                print(f"  {done}/{calls} calls, {rate:.0f}/s, findings {n}", flush=True)
    finally:
        for w in pool:
            try:
                w.proc.stdin.close()
            except OSError:
                pass
            w.kill()
    return {"calls": done, "seconds": time.monotonic() - t0, "counts": counts, "findings": dict(findings)}


def format_report(rep) -> str:
    lines = [f"{rep['calls']} calls in {rep['seconds']:.0f} s"]
    by_entry = collections.defaultdict(dict)
    for (entry, kind), n in rep["counts"].items():
        by_entry[entry][kind] = n
    lines.append("counts by entry point and outcome:")
    for entry in sorted(by_entry):
        total = sum(by_entry[entry].values())
        parts = ", ".join(f"{k} {v}" for k, v in sorted(by_entry[entry].items()))
        lines.append(f"  {entry:22s} {total:7d}: {parts}")
    classes = ["crash", "hang", "sanitizer report", "silent wrong answer", "off-contract exception"]
    lines.append("findings: " + ", ".join(f"{c} {len(rep['findings'].get(c, []))}" for c in classes))
    for c in classes:
        for f in rep["findings"].get(c, [])[:10]:
            lines.append(f"  {c}: seed {f['seed']} ({f['entry']}): {f['detail'][:300]}")
    return "\n".join(lines)
