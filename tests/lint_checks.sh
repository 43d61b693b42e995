#!/usr/bin/env bash
# A check in the integration tests must be able to fail. Bash expands a command's arguments left
# to right, so in `check "text ($(cmd))" $?` the status is that of the $(cmd) in the text, not of
# the test on the line before: such a check always passes. Likewise `local x=$(cmd)` sets $? to
# local's own status. This lists every such line and fails when there is one.
# Usage: lint_checks.sh [FILE...] (by default every tests/integration/*.sh)
set -uo pipefail
[ $# -gt 0 ] || set -- "$(dirname "$0")"/integration/*.sh
awk '
    /^[[:space:]]*(check|need)[[:space:]]+"/ && /\$\(/ && /\$\?[[:space:]]*\)?[[:space:]]*$/ {
        printf "%s:%d: the status is that of a $(...) in the description: %s\n", FILENAME, FNR, $0
        bad = 1
    }
    /\$\?/ && prev ~ /^[[:space:]]*local[[:space:]]+[A-Za-z_][A-Za-z_0-9]*=\$\(/ {
        printf "%s:%d: $? is the status of `local`, not of the $(...) before: %s\n", FILENAME, FNR, $0
        bad = 1
    }
    { prev = $0 }
    END { exit bad }
' "$@"
