#!/usr/bin/env python3
"""Whole-process timings of the mcp-key-manager CLI for benches/compare.sh.

Sections (b) vault sizes, (c) fast paths, (d) the emulated Python tool, (e) the
"one KDF, one encryption, one atomic replace" check of `create`. Standard library only.

Each command is started with posix_spawn (no shell) and reaped with wait4; the time is
wall-clock from spawn to exit, the median over --runs runs, after one untimed warm-up run.
In (b) the sizes take turns: each round runs a command once at every size (the order
rotating), and the cost of scale is the median over the rounds of each round's difference,
so a slow stretch of a shared machine weighs on every size alike.
Peak resident memory comes from one extra run under `/usr/bin/time -f %M`. A file a command
changes is restored from a pristine copy before every run, outside the timed region.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

KDF_MIN_KIB = 19456  # the weakest setting the CLI accepts for new vaults: 19456 KiB, 2 passes
TARGET_SCALE_MS = {10_000: 15.0, 100_000: 150.0}
TARGET_FAST_MS = 5.0


def spawn_time(argv, cwd, env, stdin=None, expect=0, setsid=False):
    """(wall ms, CPU ms) of one run; fails loudly on an unexpected exit code.

    CPU is the child's user + system time from wait4: unlike wall time it does not grow
    while other processes hold the CPU, so it stays comparable on a busy machine."""
    err = tempfile.TemporaryFile()
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, stdin or "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
        (os.POSIX_SPAWN_DUP2, err.fileno(), 2),
    ]
    old = os.getcwd()
    os.chdir(cwd)
    try:
        t0 = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env, file_actions=actions, setsid=setsid)
        _, status, ru = os.wait4(pid, 0)
        ms = (time.perf_counter() - t0) * 1000.0
        cpu = (ru.ru_utime + ru.ru_stime) * 1000.0
    finally:
        os.chdir(old)
    code = os.waitstatus_to_exitcode(status)
    if code != expect:
        err.seek(0)
        sys.exit(
            f"{' '.join(argv[:3])}... exited {code}, expected {expect}:\n"
            + err.read().decode(errors="replace")[:2000]
        )
    return ms, cpu


def peak_rss_kib(argv, cwd, env, stdin=None, expect=0, setsid=False):
    """Peak RSS in KiB of one run, as GNU time reports it (ru_maxrss from wait4)."""
    out = tempfile.NamedTemporaryFile(delete=False)
    out.close()
    try:
        spawn_time(
            ["/usr/bin/time", "-q", "-f", "%M", "-o", out.name] + argv,
            cwd, env, stdin, expect, setsid,
        )
        with open(out.name) as f:
            return int(f.read().split()[-1])
    finally:
        os.unlink(out.name)


class Case:
    def __init__(self, label, argv, cwd, env, stdin=None, expect=0, setup=None, setsid=False):
        self.label, self.argv, self.cwd, self.env = label, argv, cwd, env
        self.stdin, self.expect, self.setup, self.setsid = stdin, expect, setup, setsid

    def once(self):
        """(wall ms, CPU ms) of one run, its setup untimed."""
        if self.setup:
            self.setup()
        return spawn_time(self.argv, self.cwd, self.env, self.stdin, self.expect, self.setsid)

    def peak(self):
        if self.setup:
            self.setup()
        return peak_rss_kib(self.argv, self.cwd, self.env, self.stdin, self.expect, self.setsid)

    def run(self, runs, rss=True):
        self.once()
        samples, cpus = [], []
        for _ in range(runs):
            ms, cpu = self.once()
            samples.append(ms)
            cpus.append(cpu)
        self.cpu = statistics.median(cpus)
        peak = self.peak() if rss else None
        return statistics.median(samples), min(samples), peak


def interleaved(cases, runs):
    """Runs each case of `cases` (size -> Case) once per round, `runs` rounds, the order of
    the sizes rotating from round to round, so that a slow stretch of the machine falls on
    every size alike. Returns size -> [(wall ms, CPU ms)], one entry per round."""
    sizes = list(cases)
    for n in sizes:
        cases[n].once()
    out = {n: [] for n in sizes}
    for r in range(runs):
        for n in sizes[r % len(sizes):] + sizes[:r % len(sizes)]:
            out[n].append(cases[n].once())
    return out


def restore(src, dst):
    """Puts the pristine vault back, flushed to disk (as a vault that has sat there is), so
    that a run never pays for writing back the copy's dirty pages."""
    def put_back():
        shutil.copyfile(src, dst)
        fd = os.open(dst, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return put_back


def fmt_ms(x):
    return "—" if x is None else f"{x:.1f}"


def verdict(ok):
    return "met" if ok else "**missed**"


def base_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_")}
    env.pop("NO_COLOR", None)
    if extra:
        env.update(extra)
    return env


def section_sizes(a, env):
    """(b): list/view/create/revoke/verify against vaults of each size."""
    print("## (b) CLI against vaults of 10 to 100,000 keys (weakest KDF: 19456 KiB, 2 passes)\n")
    run_dir = os.path.join(a.work, "run")
    os.makedirs(run_dir, exist_ok=True)
    results = {}  # (cmd, n) -> (median wall, min wall, rss)
    cpu = {}  # (cmd, n) -> median CPU ms
    sizes = {}
    cmds = ["list --json", "view ID", "create", "revoke ID", "verify (1 key)"]
    by_size = {c: {} for c in cmds}
    for n in a.sizes:
        src = os.path.join(a.vaults, str(n))
        vault = os.path.join(run_dir, f"keys-{n}.json")
        pristine = os.path.join(src, "keys.json")
        shutil.copyfile(pristine, vault)
        os.chmod(vault, 0o600)
        sizes[n] = os.path.getsize(pristine)
        with open(os.path.join(src, "id")) as f:
            kid = f.read().strip()
        common = [a.bin, "--vault", vault]
        restored = restore(pristine, vault)
        by_size["list --json"][n] = Case("list", common + ["list", "--json"], run_dir, env)
        by_size["view ID"][n] = Case("view", common + ["view", kid], run_dir, env)
        by_size["create"][n] = Case(
            "create", common + ["create", "bench-new-key", "--quiet"], run_dir, env,
            setup=restored,
        )
        by_size["revoke ID"][n] = Case(
            "revoke", common + ["revoke", kid], run_dir, env, setup=restored
        )
        # Restored too: `revoke` above revokes this very key.
        by_size["verify (1 key)"][n] = Case(
            "verify", common + ["verify"], run_dir, env, stdin=os.path.join(src, "key"),
            setup=restored,
        )
    base = min(a.sizes)
    paired = {}  # (cmd, n) -> (median wall difference, median CPU difference) against base
    for c in cmds:
        rounds = interleaved(by_size[c], a.runs)
        for n in a.sizes:
            walls = [w for w, _ in rounds[n]]
            cpus = [u for _, u in rounds[n]]
            results[(c, n)] = (statistics.median(walls), min(walls), by_size[c][n].peak())
            cpu[(c, n)] = statistics.median(cpus)
            paired[(c, n)] = (
                statistics.median(w - b for (w, _), (b, _) in zip(rounds[n], rounds[base])),
                statistics.median(u - b for (_, u), (_, b) in zip(rounds[n], rounds[base])),
            )
            print(f"  measured {c:<15} {n:>7} keys: {results[(c, n)][0]:8.1f} ms", file=sys.stderr)
    n = max(a.sizes)
    src = os.path.join(a.vaults, str(n))
    if os.path.exists(os.path.join(src, "all-keys")):
        vault = os.path.join(run_dir, f"keys-{n}.json")
        pristine = os.path.join(src, "keys.json")
        all_keys = os.path.join(src, "all-keys")
        count = sum(1 for _ in open(all_keys))
        m, _, rss = Case("verify all", [a.bin, "--vault", vault, "verify"], run_dir, env,
                         stdin=all_keys, setup=restore(pristine, vault)).run(max(3, a.runs // 2))
        results[("verify all", n)] = (m, count, rss)

    print(f"Vault file sizes: " + ", ".join(f"{n:,} keys = {sizes[n] / 1e6:.2f} MB" for n in a.sizes))
    print()
    for title, get, k in (
        ("Wall time", lambda c, n: results[(c, n)][0], 0),
        ("CPU time (user + system)", lambda c, n: cpu[(c, n)], 1),
    ):
        print(f"{title}, whole process, release build, median of {a.runs} runs (ms); in "
              f"brackets the cost of scale: the median, over the {a.runs} rounds, of the run "
              f"minus the same round's {base}-key run (each round runs every size once, in "
              "rotating order).\n")
        print("| command | " + " | ".join(f"{n:,} keys" for n in a.sizes) + " |")
        print("|---|" + "---:|" * len(a.sizes))
        for c in cmds:
            cells = []
            for n in a.sizes:
                m = get(c, n)
                cells.append(f"{m:.1f}" if n == base else f"{m:.1f} ({paired[(c, n)][k]:+.1f})")
            print(f"| `{c}` | " + " | ".join(cells) + " |")
        print()
    baseline = peak_rss_kib([a.bin, "--version"], run_dir, env) * 1024
    print("Peak resident memory (MiB, `/usr/bin/time -f %M`); budget = KDF memory "
          f"({KDF_MIN_KIB} KiB) + 4 x vault file size; the process itself (binary, libc, "
          f"stack: the peak RSS of `--version`) takes {baseline / 2**20:.1f} MiB before any "
          "vault work.\n")
    print("| command | " + " | ".join(f"{n:,} keys" for n in a.sizes) + " |")
    print("|---|" + "---:|" * len(a.sizes))
    for c in cmds:
        cells = [f"{results[(c, n)][2] / 1024:.1f}" for n in a.sizes]
        print(f"| `{c}` | " + " | ".join(cells) + " |")
    print("| *budget* | " + " | ".join(
        f"*{(KDF_MIN_KIB * 1024 + 4 * sizes[n]) / 2**20:.1f}*" for n in a.sizes) + " |")
    print("| *budget + process baseline* | " + " | ".join(
        f"*{(KDF_MIN_KIB * 1024 + 4 * sizes[n] + baseline) / 2**20:.1f}*" for n in a.sizes)
        + " |")
    print()
    print("Targets:\n")
    for n, limit in TARGET_SCALE_MS.items():
        if n not in a.sizes or base == n:
            continue
        # The goal covers list, view, create and revoke; verify is shown, not judged.
        goal_cmds = [c for c in cmds if not c.startswith("verify")]
        worst_c = max(goal_cmds, key=lambda c: paired[(c, n)][0])
        worst = paired[(worst_c, n)][0]
        worst_cpu_c = max(goal_cmds, key=lambda c: paired[(c, n)][1])
        worst_cpu = paired[(worst_cpu_c, n)][1]
        print(f"- cost of scale at {n:,} keys <= {limit:.0f} ms (list, view, create, revoke): "
              f"worst is `{worst_c}` "
              f"{worst:+.1f} ms wall -> {verdict(worst <= limit)}; CPU: `{worst_cpu_c}` "
              f"{worst_cpu:+.1f} ms -> {verdict(worst_cpu <= limit)}")
    for extra, what in ((0, "KDF memory + 4 x file size"),
                        (baseline, "KDF memory + 4 x file size + process baseline")):
        over = [
            (c, n) for c in cmds for n in a.sizes
            if results[(c, n)][2] * 1024 > KDF_MIN_KIB * 1024 + 4 * sizes[n] + extra
        ]
        print(f"- peak memory <= {what}: " + (
            "met for every command and size" if not over else
            "**missed** for " + ", ".join(f"`{c}` at {n:,}" for c, n in over)))
    if ("verify all", max(a.sizes)) in results:
        n = max(a.sizes)
        m, count, rss = results[("verify all", n)]
        one = results[("verify (1 key)", n)][0]
        extra = m - one
        rate = (f"~{count / (extra / 1000.0):,.0f} keys/s including reading stdin and printing"
                if extra > 1.0 else "the difference is within the noise of one unlock")
        print(f"\n`verify` with all {count:,} keys on stdin against the {n:,}-key vault: "
              f"{m:.1f} ms whole process, {extra:+.1f} ms against one key ({rate}), "
              f"peak {rss / 1024:.1f} MiB.")
    print()
    return results


def section_fast(a, env):
    """(c): commands that must not touch the KDF."""
    print("## (c) Fast paths (target < %.0f ms)\n" % TARGET_FAST_MS)
    d = os.path.join(a.work, "fast")
    os.makedirs(d, exist_ok=True)
    envfile = os.path.join(d, ".env")

    def reset_env():
        with open(envfile, "w") as f:
            f.write("# a comment\nOTHER=1\nAPI_KEY_REQUIRED=false\n")
        os.chmod(envfile, 0o600)

    vault10 = os.path.join(a.vaults, str(min(a.sizes)), "keys.json")
    nopass = base_env()
    cases = [
        Case("spawn floor: /bin/true", ["/bin/true"], d, env),
        Case("`--help`", [a.bin, "--help"], d, env),
        Case("`--version`", [a.bin, "--version"], d, env),
        Case("`enable-requirement` (rewrites .env, fsync)", [a.bin, "enable-requirement"], d, env,
             setup=reset_env),
        Case("`enable-requirement` (already set: no write)", [a.bin, "enable-requirement"], d, env),
        Case("`list` on a missing vault (exit 1)",
             [a.bin, "--vault", os.path.join(d, "missing.json"), "list"], d, env, expect=1),
        Case("`list` with no passphrase source (exit 3)",
             [a.bin, "--vault", vault10, "list"], d, nopass, expect=3, setsid=True),
    ]
    print(f"Median of {a.fast_runs} runs.\n")
    print("| command | median wall ms | min wall ms | median CPU ms | peak MiB | target |")
    print("|---|---:|---:|---:|---:|---|")
    for c in cases:
        if c.label.startswith("`enable-requirement` (already"):
            reset_env()
            spawn_time(c.argv, c.cwd, c.env)
        m, lo, rss = c.run(a.fast_runs)
        target = "" if c.label.startswith("spawn") else verdict(m < TARGET_FAST_MS)
        print(f"| {c.label} | {m:.2f} | {lo:.2f} | {c.cpu:.2f} | {rss / 1024:.1f} | {target} |")
    print()


def section_default_kdf(a, env):
    """The KDF as the CLI pays it: `view` on a default-settings vault vs the weakest."""
    d = os.path.join(a.vaults, "default")
    if not os.path.exists(os.path.join(d, "keys.json")):
        return
    with open(os.path.join(d, "id")) as f:
        kid = f.read().strip()
    weak = os.path.join(a.vaults, str(min(a.sizes)))
    with open(os.path.join(weak, "id")) as f:
        wid = f.read().strip()
    m, _, rss = Case("view default", [a.bin, "--vault", os.path.join(d, "keys.json"), "view", kid],
                     a.work, env).run(a.runs)
    w, _, wrss = Case("view weak", [a.bin, "--vault", os.path.join(weak, "keys.json"), "view", wid],
                      a.work, env).run(a.runs)
    print("### The KDF as the CLI pays it\n")
    print("| `view ID`, 10-key vault | median ms | peak MiB |")
    print("|---|---:|---:|")
    print(f"| default KDF (65536 KiB, 3 passes) | {m:.1f} | {rss / 1024:.1f} |")
    print(f"| weakest KDF (19456 KiB, 2 passes) | {w:.1f} | {wrss / 1024:.1f} |")
    print()


def section_legacy(a, env):
    """(d): the old tool's plaintext store, emulated."""
    print("## (d) For context: an EMULATION of the old Python tool's plaintext store\n")
    print("Not the old tool itself: `benches/legacy_emulation.py` reads and writes the same "
          "plaintext `keys.json` shape (id -> record with `key_value`), with no encryption, no "
          "KDF, no locking and no fsync. `verify` did not exist in the old tool; it is emulated "
          "as a plaintext comparison over all records.\n")
    d = os.path.join(a.work, "legacy")
    os.makedirs(d, exist_ok=True)
    # The interpreter itself, not a version-manager shim (pyenv adds ~100 ms per start).
    py = sys.executable
    results = {}
    cmds = ["list --json", "view ID", "create", "revoke ID", "verify (1 key)"]
    for n in a.sizes:
        pristine = os.path.join(d, f"pristine-{n}.json")
        store = os.path.join(d, f"keys-{n}.json")
        keyfile = os.path.join(d, f"key-{n}")
        out = subprocess.run([py, a.emulation, "gen", str(n), pristine, keyfile],
                             check=True, capture_output=True, text=True).stdout.split()
        kid = out[0]
        shutil.copyfile(pristine, store)
        base = [py, a.emulation, "--store", store]
        cases = {
            "list --json": Case("", base + ["list", "--json"], d, env),
            "view ID": Case("", base + ["view", kid], d, env),
            "create": Case("", base + ["create", "bench-new-key"], d, env,
                           setup=restore(pristine, store)),
            "revoke ID": Case("", base + ["revoke", kid], d, env, setup=restore(pristine, store)),
            "verify (1 key)": Case("", base + ["verify"], d, env, stdin=keyfile,
                                   setup=restore(pristine, store)),
        }
        for c in cmds:
            results[(c, n)] = cases[c].run(a.runs, rss=False)
        print(f"  emulated {n:>7} keys", file=sys.stderr)
    print(f"Whole process (python3 start-up included), median of {a.runs} runs (ms):\n")
    print("| emulated command | " + " | ".join(f"{n:,} keys" for n in a.sizes) + " |")
    print("|---|" + "---:|" * len(a.sizes))
    for c in cmds:
        print(f"| `{c}` | " + " | ".join(f"{results[(c, n)][0]:.1f}" for n in a.sizes) + " |")
    print()


def section_one_kdf(a, env):
    """(e): `create` against a 10,000-key vault: one KDF, one encryption, one replace."""
    n = 10_000 if 10_000 in a.sizes else max(a.sizes)
    print(f"## (e) `create` against a {n:,}-key vault: KDFs, encryptions, atomic replaces\n")
    if not shutil.which("strace"):
        print("strace is not installed; skipped.\n")
        return
    d = os.path.join(a.work, "strace")
    os.makedirs(d, exist_ok=True)
    vault = os.path.join(d, "keys.json")
    shutil.copyfile(os.path.join(a.vaults, str(n), "keys.json"), vault)
    os.chmod(vault, 0o600)
    log = os.path.join(d, "strace.log")
    # A fixed mmap threshold stops glibc from serving a second large allocation from the
    # heap, so every Argon2 block array (m KiB) shows up as one mmap of that size.
    tenv = dict(env, MALLOC_MMAP_THRESHOLD_="131072")
    subprocess.run(
        ["strace", "-f", "-qq", "-s", "0", "-o", log, "-e",
         "trace=rename,renameat,renameat2,getrandom,mmap,fsync,fdatasync",
         a.bin, "--vault", vault, "create", "strace-check", "--quiet"],
        check=True, env=tenv, cwd=d, stdout=subprocess.DEVNULL,
    )
    text = open(log).read()
    renames = len(re.findall(r"\brename(at2?)?\(", text))
    kdf_bytes = KDF_MIN_KIB * 1024
    kdf_maps = [
        int(s) for s in re.findall(r"mmap\(NULL, (\d+),", text)
        if kdf_bytes <= int(s) <= kdf_bytes + 8192
    ]
    getrandom = len(re.findall(r"\bgetrandom\(", text))
    # XChaCha20-Poly1305 nonces are the only 24-byte draws: one per encryption.
    nonces = len(re.findall(r"\bgetrandom\([^,]*, 24, 0\)", text))
    fsyncs = len(re.findall(r"\bf(data)?sync\(", text))
    print("`strace -f -e trace=rename,renameat,renameat2,getrandom,mmap,fsync,fdatasync` with "
          "`MALLOC_MMAP_THRESHOLD_=131072`:\n")
    print("| what | count | expected |")
    print("|---|---:|---:|")
    print(f"| rename/renameat/renameat2 (atomic replaces) | {renames} | 1 |")
    print(f"| mmap of the Argon2 block array ({kdf_bytes:,} bytes): KDF runs | {len(kdf_maps)} | 1 |")
    print(f"| getrandom of 24 bytes (a fresh nonce: encryptions) | {nonces} | 1 |")
    print(f"| getrandom, all (start-up, HashMap keys, key id, secret, nonce, temp name) | "
          f"{getrandom} | |")
    print(f"| fsync/fdatasync (temp file, directory) | {fsyncs} | 2 |")
    ok = renames == 1 and len(kdf_maps) == 1 and nonces == 1
    print(f"\nOne KDF, one encryption and one atomic replace: {verdict(ok)}. (`-s 0` keeps "
          "random bytes out of the log.)\n")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--bin", required=True)
    p.add_argument("--vaults", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--emulation", required=True)
    p.add_argument("--sizes", default="10,1000,10000,100000")
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--fast-runs", type=int, default=21)
    p.add_argument("--sections", default="b,c,d,e")
    a = p.parse_args()
    a.sizes = [int(x) for x in a.sizes.split(",")]
    a.bin = os.path.abspath(a.bin)
    a.emulation = os.path.abspath(a.emulation)
    if "MCP_KEY_VAULT_PASSPHRASE" not in os.environ:
        sys.exit("set MCP_KEY_VAULT_PASSPHRASE to the benchmark vaults' passphrase")
    env = base_env({"MCP_KEY_VAULT_PASSPHRASE": os.environ["MCP_KEY_VAULT_PASSPHRASE"]})
    sections = a.sections.split(",")
    if "b" in sections:
        section_sizes(a, env)
        section_default_kdf(a, env)
    if "c" in sections:
        section_fast(a, env)
    if "d" in sections:
        section_legacy(a, env)
    if "e" in sections:
        section_one_kdf(a, env)


if __name__ == "__main__":
    main()
