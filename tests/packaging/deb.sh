#!/usr/bin/env bash
# The Debian package (ctest package_deb): `dpkg-buildpackage -us -uc -b` in a scratch copy of
# the source tree (nothing of the build folder is reused), then the .deb unpacked into a scratch
# root with `dpkg -x` and its files, maintainer scripts and dependencies checked. Slow (a
# full build of the binary, npm ci of the web UI's packages from the npm registry): one build
# at -j2. SKIPPED, exit 77, without dpkg-buildpackage or debhelper, unless CI=true.
#   deb.sh SOURCE_DIR
set -uo pipefail
src=$1
. "$src/tests/integration/lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for tool in dpkg-buildpackage dh dpkg-deb; do
    if ! command -v $tool >/dev/null; then
        echo "SKIPPED: $tool is not installed (Debian's dpkg-dev and debhelper: make deps)"
        [ "${CI:-}" = true ] && { echo "FAIL: CI=true needs $tool"; exit 1; }
        exit 77
    fi
done

# The source tree as git sees it (tracked and new files, not the ignored build folders)
mkdir -p "$tmp/src"
(cd "$src" && command git ls-files -co --exclude-standard -z | tar --null -cf - -T -) | tar -xf - -C "$tmp/src"
check "a scratch copy of the source tree" $?
deps=()
if ! (cd "$tmp/src" && dpkg-checkbuilddeps) >"$tmp/builddeps.log" 2>&1; then
    # node may come from elsewhere than Debian (nodesource): build anyway, and say what is unmet
    echo "NOTE: $(cat "$tmp/builddeps.log"); building with -d"
    deps=(-d)
fi
start=$SECONDS
(cd "$tmp/src" && DEB_BUILD_OPTIONS="parallel=2 nocheck" dpkg-buildpackage -us -uc -b "${deps[@]}") \
    >"$tmp/build.log" 2>&1
rc=$?
check "dpkg-buildpackage -us -uc -b builds the package" $rc
[ $rc -eq 0 ] || tail -40 "$tmp/build.log"
echo "built in $((SECONDS - start))s"
deb=$(ls "$tmp"/kanaria_*.deb 2>/dev/null | head -1)
[ -n "$deb" ]
check "a kanaria .deb was made ($(basename "${deb:-none}"))" $?
[ -n "$deb" ] || { echo "package_deb: $passed passed, $failures failed"; exit 1; }

root=$tmp/root
dpkg -x "$deb" "$root"
check "dpkg -x unpacks it into a scratch root" $?
"$root/usr/bin/kanaria" version | grep -q '^kanaria '
check "usr/bin/kanaria runs" $?
for f in usr/share/man/man1/kanaria.1.gz usr/share/man/man5/kanaria.yaml.5.gz \
    usr/share/man/man5/kanaria-app.5.gz usr/share/bash-completion/completions/kanaria \
    usr/share/zsh/vendor-completions/_kanaria usr/share/fish/vendor_completions.d/kanaria.fish \
    lib/systemd/system/kanaria.service usr/lib/sysusers.d/kanaria.conf; do
    [ -s "$root/$f" ]
    check "the package has /$f" $?
done
ls "$root"/usr/share/doc/kanaria/examples/kanaria.yaml* >/dev/null 2>&1
check "the package has the reference config under /usr/share/doc/kanaria/examples" $?
zcat "$root/usr/share/man/man5/kanaria.yaml.5.gz" | cmp -s - <("$root/usr/bin/kanaria" help --man kanaria.yaml.5)
check "its kanaria.yaml(5) is what its binary writes" $?
grep -qx 'ExecStart=/usr/bin/kanaria serve -c /etc/kanaria/kanaria.yaml' \
    "$root/lib/systemd/system/kanaria.service"
check "the unit runs /usr/bin/kanaria" $?
[ -z "$(find "$root" -path '*/tests/*' -o -name 'kanaria_*' -type f)" ]
check "no test program or demo binary in the package" $?

dpkg-deb -e "$deb" "$tmp/control"
grep -q 'systemd-sysusers.*kanaria' "$tmp/control/postinst"
check "postinst makes the user kanaria (systemd-sysusers)" $?
grep -q 'deb-systemd-helper.*kanaria.service' "$tmp/control/postinst"
check "postinst enables kanaria.service (dh_installsystemd)" $?
depends=$(dpkg-deb -f "$deb" Depends)
for p in libgit2-1.5 libh2o0.13 libuv1 libsqlite3-0 systemd; do
    [[ $depends == *"$p"* ]] || { echo "  Depends: $depends"; false; }
    check "the package depends on $p" $?
done

echo "package_deb: $passed passed, $failures failed"
[ "$failures" -eq 0 ]
