#!/usr/bin/env bash
# The web UI's DOM-free modules (ui/src/sse.js, model.js, format.js, and api.js with a stand-in
# fetch) under node:test. Without node: SKIPPED (exit 77), a failure when CI=true.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v node >/dev/null 2>&1; then
    echo "SKIPPED: node not found (tests/deps.sh installs nodejs)"
    if [ "${CI:-}" = true ]; then
        echo "FAIL: CI=true and node not found"
        exit 1
    fi
    exit 77
fi
exec node --test "$here"/*.test.js
