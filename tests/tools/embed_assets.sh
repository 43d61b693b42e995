#!/usr/bin/env bash
# tools/embed_assets.py: the same files give the same C file byte for byte (gzip with mtime 0),
# the build's ui_assets.c is what it writes from the build's files, the table holds each file's
# bytes and its sha256 ETag, and a missing or empty file is refused with its name.
# Usage: embed_assets.sh SOURCE_DIR BUILD_UI_DIR (the build's ui/: dist/ and ui_assets.c)
set -uo pipefail
src=$1
ui=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
passed=0
check() {
    if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else echo "FAIL: $1"; failures=$((failures + 1)); fi
}
gen="$src/tools/embed_assets.py"

python3 "$gen" "$tmp/a.c" "$ui/dist" && sleep 1.1 && python3 "$gen" "$tmp/b.c" "$ui/dist"
check "the generator runs twice on the build's files" $?
cmp -s "$tmp/a.c" "$tmp/b.c"
check "its output does not depend on when it runs" $?
cmp -s "$tmp/a.c" "$ui/ui_assets.c"
check "the build's ui_assets.c is what it writes from the build's files" $?
for f in index.html app.js app.css; do
    sum=$(sha256sum "$ui/dist/$f" | cut -c1-32)
    grep -qF "\"\\\"$sum\\\"\", \"\\\"$sum-gzip\\\"\"" "$tmp/a.c"
    check "the table names $f's sha256 prefix as its ETags" $?
done
# the bytes of app.js as the C array holds them
python3 - "$tmp/a.c" "$ui/dist/app.js" <<'PY'
import gzip, re, sys
text = open(sys.argv[1]).read()
want = open(sys.argv[2], "rb").read()
def array(name):
    m = re.search(r"%s\[\d+\] = \{\n(.*?)\n\};" % name, text, re.S)
    return bytes(int(v) for v in re.findall(r"\d+", m.group(1)))
sys.exit(0 if array("kn_ui_body_1") == want and gzip.decompress(array("kn_ui_gzip_1")) == want else 1)
PY
check "the body and the gzip arrays of app.js hold its bytes" $?

mkdir -p "$tmp/d" && cp "$ui/dist/index.html" "$ui/dist/app.js" "$tmp/d/"
python3 "$gen" "$tmp/c.c" "$tmp/d" 2>"$tmp/err"
[ $? -eq 1 ] && grep -q "cannot read '$tmp/d/app.css'" "$tmp/err" && [ ! -e "$tmp/c.c" ]
check "a missing app.css is refused with its name, and nothing is written" $?
: >"$tmp/d/app.css"
python3 "$gen" "$tmp/c.c" "$tmp/d" 2>"$tmp/err"
[ $? -eq 1 ] && grep -q "'$tmp/d/app.css' is empty" "$tmp/err"
check "an empty app.css is refused with its name" $?

echo "embed_assets: $passed passed, $failures failed"
[ "$failures" -eq 0 ]
