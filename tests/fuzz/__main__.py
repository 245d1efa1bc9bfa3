"""``python -m tests.fuzz --calls 100000``: the full fuzz campaign over every
public entry point, in crash-isolating worker processes (runner.py). Prints
counts by entry point and outcome (exception type) and every finding by class:
crash, hang, sanitizer report, silent wrong answer, off-contract exception.
Exit status 1 when anything was found. Run it from the repository root.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .runner import campaign, format_report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=100_000)
    p.add_argument("--start", type=int, default=0, help="first seed (seeds are consecutive)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--timeout", type=float, default=60.0, help="seconds before a call is a hang")
    p.add_argument("--progress", type=float, default=30.0, help="seconds between progress lines")
    p.add_argument("--json", help="write the report here too")
    p.add_argument("--log", help="append every finding here as it happens (JSON lines)")
    a = p.parse_args(argv)
    log = open(a.log, "a") if a.log else None
    rep = campaign(a.calls, workers=a.workers, start=a.start, timeout=a.timeout, progress=a.progress, log=log)
    print(format_report(rep))
    if a.json:
        out = dict(rep, counts=[[e, k, n] for (e, k), n in sorted(rep["counts"].items())])
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 1 if any(rep["findings"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
