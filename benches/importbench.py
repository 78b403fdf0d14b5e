#!/usr/bin/env python3
"""Times `import-legacy` on the Python tool's plaintext keys.json with the release binary.

    importbench.py --bin target/release/mcp-key-manager [--sizes 10000,100000]
                   [--zxcvbn 1000] [--runs 3] [--work DIR]

The stores come from benches/legacy_emulation.py (`gen`): N records, each key 64 random
lowercase hex characters, as the Python tool issued them. Each import writes a new vault
at the default KDF (65536 KiB, 3 passes), as a user's would; the passphrase is a throwaway in
the environment, never an argument. Sizes take turns within a round, and each figure is the
median over the rounds (wall ms, and CPU ms = user + system of the process).

In the same run, what the strength shortcut (crates/vault/src/keyfmt/strength.rs) saves:
two stores of --zxcvbn keys each, one as above and one the same keys with the last
character made 'g' (not hex, so the shortcut does not apply and zxcvbn judges every key).
zxcvbn's cost per key is the CPU difference of the two imports over the count.
Standard library only.
"""

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cmdbench import spawn_time  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def gen_store(n, path):
    """A plaintext store of `n` keys, written by the emulation of the Python tool."""
    subprocess.run(
        [sys.executable, os.path.join(HERE, "legacy_emulation.py"), "gen", str(n), path,
         path + ".lastkey"],
        check=True, stdout=subprocess.DEVNULL,
    )
    os.remove(path + ".lastkey")


def non_hex_copy(src, dst):
    """`src` with each key's last character replaced by 'g': the same shape, not hex."""
    with open(src) as f:
        keys = json.load(f)
    for r in keys.values():
        r["key_value"] = r["key_value"][:-1] + "g"
    with open(dst, "w") as f:
        json.dump(keys, f, indent=2)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", required=True)
    p.add_argument("--sizes", default="10000,100000")
    p.add_argument("--zxcvbn", type=int, default=1000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--work")
    a = p.parse_args()
    binary = os.path.abspath(a.bin)
    work = a.work or tempfile.mkdtemp(prefix="importbench-")
    os.makedirs(work, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": work,
        "MCP_KEY_MANAGER_CONFIG_DIR": os.path.join(work, "config"),
        "MCP_KEY_VAULT_PASSPHRASE": secrets.token_urlsafe(24),  # a throwaway
    }

    stores = {}
    for n in [int(s) for s in a.sizes.split(",")]:
        stores[f"{n} hex keys"] = (n, os.path.join(work, f"hex-{n}.json"))
        gen_store(n, stores[f"{n} hex keys"][1])
    m = a.zxcvbn
    hex_m = os.path.join(work, f"hex-{m}-b.json")
    gen_store(m, hex_m)
    stores[f"{m} hex keys (b)"] = (m, hex_m)
    stores[f"{m} non-hex keys (b)"] = (m, os.path.join(work, f"nonhex-{m}.json"))
    non_hex_copy(hex_m, stores[f"{m} non-hex keys (b)"][1])

    names = list(stores)
    times = {name: [] for name in names}
    for r in range(a.runs):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            n, store = stores[name]
            out = os.path.join(work, "out", "vault.json")
            shutil.rmtree(os.path.dirname(out), ignore_errors=True)
            argv = [binary, "--vault", out, "import-legacy", store]
            times[name].append(spawn_time(argv, work, env))

    print(f"import-legacy, median of {a.runs} runs (wall ms / CPU ms); work dir {work}")
    print()
    print("| store | keys | wall ms | CPU ms | CPU µs/key |")
    print("|---|---:|---:|---:|---:|")
    cpu = {}
    for name in names:
        n = stores[name][0]
        wall = statistics.median(t[0] for t in times[name])
        cpu[name] = statistics.median(t[1] for t in times[name])
        print(f"| {name} | {n:,} | {wall:,.0f} | {cpu[name]:,.0f} | {cpu[name] * 1000 / n:,.1f} |")
    per_key = (cpu[f"{m} non-hex keys (b)"] - cpu[f"{m} hex keys (b)"]) / m
    print()
    print(f"zxcvbn per key (non-hex minus hex, {m:,} keys): {per_key:.2f} ms CPU")
    for name in names:
        n = stores[name][0]
        if name.endswith(" hex keys"):
            print(f"without the shortcut, {n:,} hex keys would add about "
                  f"{per_key * n / 1000:,.0f} s CPU")


if __name__ == "__main__":
    main()
