#!/usr/bin/env python3
"""Measure how many mutate.py candidates make a project's test suite fail.

Usage: python3 kill_ratio.py PROJECT_DIR [--mode bugs|stub] [--seed N] [--max K] [--jobs J]

For each candidate, a private copy of the project gets the candidate's
new_source and `python3 -m pytest -q -x -p no:cacheprovider` runs in it.
A candidate "breaks a test" when pytest exits with status 1 (tests failed);
other non-zero statuses (collection or import errors) are counted apart.
Prints a per-transform table and the overall ratio. A development aid, not
part of the pipeline (the Go stages do the real validation in a sandbox).
"""

import argparse
import collections
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def run_candidate(workdir, original, candidate):
    """Apply candidate in workdir, run pytest, restore the file; return pytest's exit status."""
    path = os.path.join(workdir, candidate["file"])
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(candidate["new_source"])
    try:
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=5,
        )
        return proc.returncode
    except subprocess.TimeoutExpired:
        return -1
    finally:
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(original[candidate["file"]])


def main():
    """Run the measurement and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("project")
    parser.add_argument("--mode", default="bugs", choices=("bugs", "stub"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()

    cmd = [sys.executable, os.path.join(HERE, "mutate.py"), args.mode, args.project, "--seed", str(args.seed)]
    if args.max:
        cmd += ["--max", str(args.max)]
    candidates = json.loads(subprocess.run(cmd, check=True, capture_output=True).stdout)["candidates"]

    with tempfile.TemporaryDirectory() as tmp:
        workdirs = []
        for j in range(args.jobs):
            w = os.path.join(tmp, "w%d" % j)
            shutil.copytree(args.project, w, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
            workdirs.append(w)
        original = {}
        for c in candidates:
            if c["file"] not in original:
                with open(os.path.join(args.project, c["file"]), encoding="utf-8", newline="") as f:
                    original[c["file"]] = f.read()
        chunks = [candidates[j:: args.jobs] for j in range(args.jobs)]

        def work(j):
            return [(c, run_candidate(workdirs[j], original, c)) for c in chunks[j]]

        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            results = [r for rs in pool.map(work, range(args.jobs)) for r in rs]

    table = collections.defaultdict(collections.Counter)
    for c, status in results:
        outcome = "fail" if status == 1 else ("pass" if status == 0 else "error")
        table[c["transform"]][outcome] += 1
        table["ALL"][outcome] += 1
    print("%-26s %6s %6s %6s %6s %7s" % ("transform", "total", "fail", "pass", "error", "ratio"))
    for name in sorted(table, key=lambda n: (n == "ALL", n)):
        t = table[name]
        total = sum(t.values())
        print("%-26s %6d %6d %6d %6d %6.1f%%" % (name, total, t["fail"], t["pass"], t["error"], 100.0 * (t["fail"]) / total))
    survivors = [c for c, status in results if status == 0]
    for c in survivors[:15]:
        print("survived:", c["description"])
    statuses = collections.Counter(status for _, status in results if status not in (0, 1))
    if statuses:
        print("other exit statuses (-1 = timeout):", dict(sorted(statuses.items())))


if __name__ == "__main__":
    main()
