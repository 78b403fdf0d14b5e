#!/usr/bin/env bash
# Runs the integration packages' suites: Python mcp-key-verifier (pytest, with the real MCP SDK)
# and TypeScript mcp-key-verifier (npm ci && npm test, with the real SDK). Exits non-zero if
# either fails. Each step is bounded in time.
#
#   MCP_TEST_PYTHON  a Python that has `pip install './integrations/python[test]'` done
#                    (default: python3). With CI=true a missing SDK fails the Python suite.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="${MCP_TEST_PYTHON:-python3}"
failed=()

echo "== integrations/python with $py"
if (cd "$here/python" && timeout 180 "$py" -m pytest -q -p no:cacheprovider tests); then
  :
else
  failed+=("python")
fi

echo "== integrations/typescript with node $(node --version 2>/dev/null || echo missing)"
if (cd "$here/typescript" && timeout 180 npm ci --no-audit --no-fund && timeout 180 npm test); then
  :
else
  failed+=("typescript")
fi

if ((${#failed[@]})); then
  echo "integrations: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "integrations: both suites passed"
