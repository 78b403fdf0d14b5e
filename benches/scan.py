#!/usr/bin/env python3
"""`scan` on real trees, beside the physical yardsticks:

1. files: a directory tree (default: the unpacked sources of the Cargo registry on this
   machine, tens of thousands of real files), `scan --no-ignore DIR` against ripgrep
   searching the same tree for the same pattern (`rg --no-ignore --hidden -c`);
2. history: a synthetic repository of N commits (default 100,000, made with
   `git fast-import`, one small file changed per commit, a key planted in the middle),
   `scan --git` against `git log --all -p -U0` alone (what scan reads).

Medians of R runs; files/s, MB/s, commits/s, printed in Markdown.

Usage: cargo build --release && benches/scan.py [--tree DIR] [--commits N] [--runs R]
Needs git, rg and python3 (standard library only).
"""

import argparse
import glob
import os
import shutil
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.abspath(os.environ.get("BIN") or os.path.join(
    os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "mcp-key-manager"))
PATTERN = (r"\b(?:mcp_[0-9a-f]{16}_[0-9a-f]{64}|(?:[a-z][a-z0-9]{0,15}_)?mkm_[0-9a-f]{16}_"
           r"[0-9A-Za-z]{49})\b")


def timed(cmd, runs, cwd=None):
    times = []
    for _ in range(runs):
        t0 = time.monotonic()
        subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={"PATH": os.environ["PATH"]})
        times.append(time.monotonic() - t0)
    return statistics.median(times)


def tree_size(tree):
    files = size = 0
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for f in filenames:
            p = os.path.join(dirpath, f)
            if os.path.isfile(p) and not os.path.islink(p):
                files += 1
                size += os.path.getsize(p)
    return files, size


def make_history(path, commits):
    subprocess.run(["git", "init", "-q", path], check=True)
    key = "mcp_0123456789abcdef_" + "ab" * 32
    lines = []
    for i in range(commits):
        body = f"line {i}\nvalue = {i * 7919 % 1000003}\n"
        if i == commits // 2:
            body += f"api_key = {key}\n"
        data = body.encode()
        lines.append(f"commit refs/heads/main\ncommitter b <b@example.invalid> {1700000000 + i} +0000\n"
                     f"data 1\nc\n" + ("" if i == 0 else "") +
                     f"M 100644 inline f{i % 100}.txt\ndata {len(data)}\n")
        lines.append(body + "\n")
    stream = "".join(lines).encode()
    subprocess.run(["git", "-C", path, "fast-import", "--quiet"], input=stream, check=True)


def main():
    ap = argparse.ArgumentParser()
    default_tree = next(iter(glob.glob(os.path.expanduser("~/.cargo/registry/src/*"))), None)
    ap.add_argument("--tree", default=default_tree)
    ap.add_argument("--commits", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    if not os.access(BIN, os.X_OK):
        raise SystemExit(f"build first: cargo build --release ({BIN} missing)")
    work = tempfile.mkdtemp()
    try:
        print("| what | size | scan | yardstick | scan throughput |")
        print("|---|---|---:|---:|---|")
        if a.tree:
            files, size = tree_size(a.tree)
            t_scan = timed([BIN, "scan", "--no-ignore", a.tree, "--json"], a.runs, cwd=work)
            t_rg = timed(["rg", "--no-ignore", "--hidden", "-c", "-e", PATTERN, a.tree], a.runs)
            print(f"| files: the Cargo registry's sources | {files:,} files, {size / 1e6:,.0f} MB "
                  f"| {t_scan:.2f} s | rg {t_rg:.2f} s | {files / t_scan:,.0f} files/s, "
                  f"{size / 1e6 / t_scan:,.0f} MB/s ({t_scan / t_rg:.1f}× rg) |")
        repo = os.path.join(work, "repo")
        make_history(repo, a.commits)
        t_scan = timed([BIN, "scan", "--git", repo, "--json"], a.runs, cwd=work)
        t_log = timed(["git", "-C", repo, "log", "--all", "-p", "--no-color", "-U0",
                       "--format=commit %H"], a.runs)
        print(f"| history: a synthetic repository | {a.commits:,} commits | {t_scan:.2f} s "
              f"| git log -p {t_log:.2f} s | {a.commits / t_scan:,.0f} commits/s "
              f"({t_scan / t_log:.1f}× git log) |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
