#!/usr/bin/env bash
# What `cmake --install` puts in a prefix (ctest install_tree), and the systemd unit it installs
# checked by systemd-analyze verify (ctest systemd_unit; SKIPPED, exit 77, without
# systemd-analyze unless CI=true).
#   install.sh tree|unit BUILD_DIR SOURCE_DIR
set -uo pipefail
mode=$1
build=$2
src=$3
. "$src/tests/integration/lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ "$mode" = unit ] && ! command -v systemd-analyze >/dev/null; then
    echo "SKIPPED: systemd-analyze is not installed (Debian's systemd package)"
    [ "${CI:-}" = true ] && { echo "FAIL: CI=true needs systemd-analyze"; exit 1; }
    exit 77
fi

prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1
check "cmake --install into a scratch prefix" $?
kanaria=$prefix/bin/kanaria

if [ "$mode" = unit ]; then
    unit=$prefix/lib/systemd/system/kanaria.service
    [ -f "$unit" ]
    check "the unit is installed at lib/systemd/system/kanaria.service" $?
    grep -qx "ExecStart=$kanaria serve -c /etc/kanaria/kanaria.yaml" "$unit"
    check "ExecStart runs the installed binary" $?
    # verify loads the unit as systemd would: unknown keys, bad values, a missing ExecStart
    # binary are errors; man pages are checked by install_tree, not by man(1) here
    systemd-analyze verify --man=no "$unit" >"$tmp/verify.log" 2>&1
    rc=$?
    # systemd-analyze exits 0 on warnings too: a line naming the unit file is a finding
    ! grep -F "kanaria.service:" "$tmp/verify.log"
    check "systemd-analyze verify finds nothing to say about kanaria.service" $(( rc || $? ))
    [ $rc -eq 0 ] || cat "$tmp/verify.log"
    for key in Type=notify 'ExecReload=/bin/kill -HUP $MAINPID' WatchdogSec= User=kanaria \
        ProtectSystem=strict ReadWritePaths=/var/lib/kanaria NoNewPrivileges=yes PrivateTmp=yes \
        ProtectHome=yes 'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' KillMode=process; do
        grep -q "^$key" "$unit"
        check "the unit says $key" $?
    done
    [ -f "$prefix/lib/sysusers.d/kanaria.conf" ] &&
        grep -qE '^u kanaria - .* /var/lib/kanaria ' "$prefix/lib/sysusers.d/kanaria.conf"
    check "sysusers.d/kanaria.conf makes the user kanaria, home /var/lib/kanaria" $?
    echo "systemd_unit: $passed passed, $failures failed"
    [ "$failures" -eq 0 ]
    exit
fi

"$kanaria" version | grep -q '^kanaria [0-9]'
check "the installed binary runs" $?
for f in share/man/man1/kanaria.1 share/man/man5/kanaria.yaml.5 share/man/man5/kanaria-app.5 \
    share/bash-completion/completions/kanaria share/zsh/site-functions/_kanaria \
    share/fish/vendor_completions.d/kanaria.fish lib/systemd/system/kanaria.service \
    lib/sysusers.d/kanaria.conf share/doc/kanaria/examples/kanaria.yaml; do
    [ -s "$prefix/$f" ]
    check "installed: $f" $?
done
cmp -s "$src/examples/kanaria.yaml" "$prefix/share/doc/kanaria/examples/kanaria.yaml"
check "the commented reference config is examples/kanaria.yaml" $?

# The man pages are what the binary's tables say: the same as `help --man`, and every key of
# `kanaria help config` / `help app` (the Markdown reference) is in the page
for page in kanaria.1 kanaria.yaml.5 kanaria-app.5; do
    "$kanaria" help --man "$page" | cmp -s - "$prefix/share/man/man${page##*.}/$page"
    check "$page is what kanaria help --man writes" $?
done
keys_missing() { # TOPIC PAGE: keys of `kanaria help TOPIC` absent from PAGE
    local key missing=0
    for key in $("$kanaria" help "$1" | sed -n 's/^| `\([^`]*\)` |.*/\1/p'); do
        grep -qF "\\fB${key//-/\\-}\\fR" "$2" || { echo "  $2: no key $key"; missing=1; }
    done
    return $missing
}
keys_missing config "$prefix/share/man/man5/kanaria.yaml.5"
check "kanaria.yaml(5) has every key of kanaria help config" $?
keys_missing app "$prefix/share/man/man5/kanaria-app.5"
check "kanaria-app(5) has every key of kanaria help app" $?
keys_missing localservice "$prefix/share/man/man5/kanaria-app.5"
check "kanaria-app(5) has every key of the LocalService manifest" $?
for cmd in $("$kanaria" help | sed -n 's/^  \([a-z]*\) .*/\1/p'); do
    grep -qF "\\fBkanaria $cmd" "$prefix/share/man/man1/kanaria.1" || { echo "  no $cmd"; false; }
    check "kanaria(1) documents kanaria $cmd" $?
done
if command -v groff >/dev/null; then
    for page in man1/kanaria.1 man5/kanaria.yaml.5 man5/kanaria-app.5; do
        out=$(groff -man -ww -z "$prefix/share/man/$page" 2>&1)
        [ -z "$out" ]
        check "groff -man -ww reads $page without a warning" $?
        [ -z "$out" ] || echo "$out" | head -5
    done
fi

# The completions: bash completes commands and options for real; the others parse
comp() { # WORDS...: what bash's completion offers for the last word
    bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _kanaria; echo "${COMPREPLY[*]}"' \
        sh "$prefix/share/bash-completion/completions/kanaria" "$@"
}
[ "$(comp kanaria wa)" = wait ]
check "bash completes 'kanaria wa' to wait" $?
[ "$(comp kanaria status --)" = "--repo --json --watch --until-done" ]
check "bash completes the options of kanaria status" $?
[ "$(comp kanaria completion '')" = "bash zsh fish" ]
check "bash completes the shells of kanaria completion" $?
[[ " $(comp kanaria help platform '') " == *" local "* ]]
check "bash completes the platform types after kanaria help platform" $?
for cmd in $("$kanaria" help | sed -n 's/^  \([a-z]*\) .*/\1/p'); do
    [[ " $(comp kanaria '') " == *" $cmd "* ]] || { echo "  no $cmd"; false; }
    check "bash completion offers $cmd" $?
done
head -1 "$prefix/share/zsh/site-functions/_kanaria" | grep -qx '#compdef kanaria'
check "the zsh completion starts with #compdef kanaria" $?
grep -q "^complete -c kanaria -n '__fish_seen_subcommand_from wait' -l timeout -r$" \
    "$prefix/share/fish/vendor_completions.d/kanaria.fish"
check "the fish completion knows wait --timeout" $?
for sh in zsh fish; do
    f=$(ls "$prefix"/share/zsh/site-functions/_kanaria "$prefix"/share/fish/vendor_completions.d/kanaria.fish | grep -F "$sh")
    if command -v $sh >/dev/null; then
        $sh -n "$f"
        check "$sh parses its completion" $?
    elif [ "${CI:-}" = true ]; then
        check "$sh parses its completion ($sh is not installed: make deps installs it)" 1
    else
        echo "SKIPPED: $sh parses its completion ($sh is not installed: make deps installs it)"
    fi
done
"$kanaria" completion tcsh >/dev/null 2>&1
[ $? -eq 2 ]
check "kanaria completion tcsh is a usage error" $?

# DESTDIR, as packagers stage it
DESTDIR=$tmp/root cmake --install "$build" --prefix /usr >/dev/null 2>&1 &&
    [ -x "$tmp/root/usr/bin/kanaria" ] && [ -s "$tmp/root/usr/share/man/man1/kanaria.1" ] &&
    grep -qx 'ExecStart=/usr/bin/kanaria serve -c /etc/kanaria/kanaria.yaml' \
        "$tmp/root/usr/lib/systemd/system/kanaria.service"
check "DESTDIR=... cmake --install --prefix /usr stages under DESTDIR" $?

echo "install_tree: $passed passed, $failures failed"
[ "$failures" -eq 0 ]
