#!/usr/bin/env bash
# The Dockerfile without docker (ctest dockerfile_tree): the tree its build stage stages
# (`DESTDIR=/stage cmake --install`, done here the same way from this build), what its final
# stage COPYs out of it, the user it runs as, its ENTRYPOINT and CMD, and that the runtime
# packages it installs hold every library the binary needs (or are in every Debian: Priority
# required), and the build stage's packages are those tests/deps.sh builds with.
#   dockerfile.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
build=$1
src=$2
. "$src/tests/integration/lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One line per instruction, continuations joined: "STAGE KEYWORD ARGS" (stage 0 is the first)
python3 - "$src/Dockerfile" >"$tmp/instr" <<'PY'
import re, sys
stage, cur = -1, ""
for raw in open(sys.argv[1]):
    line = raw.rstrip("\n")
    if not cur and (not line.strip() or line.lstrip().startswith("#")):
        continue
    if line.endswith("\\"):
        cur += line[:-1] + " "
        continue
    cur += line
    kw, _, args = cur.strip().partition(" ")
    if kw.upper() == "FROM":
        stage += 1
    print(stage, kw.upper(), re.sub(r"\s+", " ", args.strip()))
    cur = ""
PY
last=$(awk '$2 == "FROM" {n = $1} END {print n}' "$tmp/instr")
final() { awk -v s="$last" -v k="$1" '$1 == s && $2 == k {sub(/^[0-9]+ [A-Z]+ /, ""); print}' "$tmp/instr"; }
first() { awk -v k="$1" '$1 == 0 && $2 == k {sub(/^[0-9]+ [A-Z]+ /, ""); print}' "$tmp/instr"; }

[ "$(final FROM)" = "debian:12-slim" ]
check "the image is based on debian:12-slim" $?
first RUN | grep -q 'DESTDIR=/stage cmake --install /build' &&
    first RUN | grep -q -- '-DCMAKE_INSTALL_PREFIX=/usr'
check "the build stage stages cmake --install --prefix /usr under /stage" $?

# The same staging from this build
DESTDIR=$tmp/stage cmake --install "$build" --prefix /usr >"$tmp/install.log" 2>&1
check "DESTDIR=stage cmake --install --prefix /usr" $?
mkdir -p "$tmp/image"
ncopies=0
while read -r from from_path dest; do
    [ "$from" = "--from=build" ] && [[ $from_path == /stage/* ]]
    check "COPY takes from the build stage's /stage ($from $from_path)" $?
    [ -e "$tmp/stage${from_path#/stage}" ]
    check "the staged tree has ${from_path#/stage}" $?
    mkdir -p "$tmp/image$(dirname "$dest")" &&
        cp -a "$tmp/stage${from_path#/stage}" "$tmp/image$dest" 2>/dev/null
    ncopies=$((ncopies + 1))
done < <(final COPY)
[ $ncopies -ge 1 ]
check "the final stage copies something ($ncopies)" $?

user=$(final USER)
[ "$user" = kanaria ] && final RUN | grep -qE "useradd .*--system.* $user( |$)"
check "the image runs as the non-root user kanaria, made by useradd --system" $?
home=$(final RUN | sed -n 's/.*--home-dir \([^ ]*\).*/\1/p')
[ "$home" = /var/lib/kanaria ] && [ "$(final WORKDIR)" = "$home" ] && [ "$(final VOLUME)" = "$home" ]
check "the user's home, WORKDIR and VOLUME are the dataDir /var/lib/kanaria" $?
entry=$(final ENTRYPOINT | python3 -c 'import json,sys; print(json.load(sys.stdin)[0])')
[ -x "$tmp/image$entry" ] && "$tmp/image$entry" version | grep -q '^kanaria '
check "the ENTRYPOINT $entry is the kanaria binary the image holds" $?
cmd=$(final CMD | python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)))')
[ "$cmd" = "serve -c /etc/kanaria/kanaria.yaml" ] && final RUN | grep -q 'mkdir -p /etc/kanaria'
check "CMD serves /etc/kanaria/kanaria.yaml, its folder made" $?
"$tmp/image$entry" validate -c "$tmp/image/usr/share/doc/kanaria/examples/kanaria.yaml" "$src/examples" >/dev/null
check "the reference config in the image is valid" $?

# apt packages of a stage's RUN lines
packages() { "$@" | grep -o 'apt-get install [^&]*' | tr ' ' '\n' | grep -vE '^(apt-get|install|-.*)?$' | sort -u; }
packages final RUN >"$tmp/runtime"
packages first RUN >"$tmp/buildtime"
grep -qx haproxy "$tmp/runtime"
check "the image has HAProxy for the local platform" $?
# what apt and dpkg depend on is in every Debian image
base=$(dpkg-query -W -f='${Pre-Depends}, ${Depends}\n' apt dpkg 2>/dev/null | tr ',|' '\n\n' |
    sed 's/^ *//; s/[ (:].*//' | grep -v '^$' | sort -u)
missing=
for lib in $(objdump -p "$tmp/image$entry" | awk '/NEEDED/ {print $2}'); do
    path=$(ldconfig -p | awk -v l="$lib" '$1 == l {print $NF; exit}')
    real=$(readlink -f "$path")
    pkg=$( (dpkg -S "$real" 2>/dev/null || dpkg -S "${real#/usr}" 2>/dev/null) | head -1 | cut -d: -f1)
    prio=$(dpkg-query -W -f='${Priority}' "$pkg" 2>/dev/null)
    grep -qx "$pkg" "$tmp/runtime" || [ "$prio" = required ] || grep -qx "$pkg" <<<"$base" ||
        missing="$missing $lib($pkg)"
done
[ -z "$missing" ]
check "every library kanaria needs is in a package the image installs:${missing:- yes}" $?
for p in $(sed -n '/^packages=(/,/^)/p' "$src/tests/deps.sh" | grep -oE '[a-z0-9.+-]+-dev\b' |
    grep -v '^libclang'); do # the libraries kanaria links (clang's runtime is for make fuzz)
    grep -qx "$p" "$tmp/buildtime"
    check "the build stage installs $p (tests/deps.sh)" $?
done
grep -qx nodejs "$tmp/buildtime" && grep -qx npm "$tmp/buildtime"
check "the build stage installs nodejs and npm (the web UI's bundle)" $?
if command -v apt-cache >/dev/null; then
    for p in $(cat "$tmp/runtime" "$tmp/buildtime" | sort -u); do
        apt-cache show "$p" >/dev/null 2>&1
        check "Debian has the package $p" $?
    done
fi
grep -qx 'build\*/' "$src/.dockerignore"
check ".dockerignore leaves build folders out of the context" $?

echo "dockerfile_tree: $passed passed, $failures failed"
[ "$failures" -eq 0 ]
