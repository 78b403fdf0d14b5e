#!/usr/bin/env bash
# Makes the format-1 vault vector with the release under test (run from the repository
# root after `cargo build`): a vault imported from the Python tool's store (legacy keys,
# metadata, an inactive key) plus one key of this tool, and the exact content it must
# decrypt to. The files are committed; rerunning makes a new vault (fresh salt, nonce and
# keys), so only rerun it on purpose, and commit all three files together.
set -euo pipefail
bin=target/debug/mcp-key-manager
out=tests/vectors/vault
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export MCP_KEY_VAULT_PASSPHRASE="$(cat "$out/v1.passphrase")"
export MCP_KEY_VAULT="$work/keys.json" MCP_ENV_FILE="$work/.env"
cp tests/data/ok_legacy_store.json "$work/keys.json"
"$bin" import-legacy --kdf-preset minimum >/dev/null
"$bin" create modern -d "made by make-v1.sh" -e 0 -p tools:call -p resources:read --json >/dev/null
"$bin" list --json >"$work/records.json"
"$bin" export-verifier --out "$work/verifier.json" >/dev/null
python3 - "$work" "$bin" >"$out/v1.expected.json" <<'PY'
import json, subprocess, sys
work, bin = sys.argv[1], sys.argv[2]
records = json.load(open(f"{work}/records.json"))
hashes = {k["id"]: k["hash"] for k in json.load(open(f"{work}/verifier.json"))["keys"]}
for r in records:
    r["key"] = subprocess.run([bin, "use", r["id"], "--print"], capture_output=True, text=True).stdout.strip() if r["status"] == "active" else None
    r["hash"] = hashes[r["id"]]
print(json.dumps({"passphrase_file": "v1.passphrase", "records": records}, indent=2))
PY
cp "$work/keys.json" "$out/v1.vault.json"
