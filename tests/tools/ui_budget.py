#!/usr/bin/env python3
"""The web UI's page-weight budget, on what the build wrote (ui/build.mjs into DIST): the whole
page (index.html + app.js + app.css, each gzip-compressed as kanaria sends it) under PAGE_MAX
bytes, and no npm package (a framework runtime, the chart library) putting over PACKAGE_MAX
bytes of minified code into app.js (DIST/sizes.json; kanaria's own code, "(kanaria)", counts in
the page only). Prints the figures; exits 1 over budget.

    ui_budget.py DIST PAGE_MAX PACKAGE_MAX
"""
import gzip
import json
import os
import sys

FILES = ["index.html", "app.js", "app.css"]


def kib(n):
    return f"{n / 1000:.1f} KB"


def main(argv):
    if len(argv) != 4:
        sys.stderr.write("usage: ui_budget.py DIST PAGE_MAX PACKAGE_MAX\n")
        return 2
    dist, page_max, package_max = argv[1], int(argv[2]), int(argv[3])
    over = []
    total = 0
    for name in FILES:
        path = os.path.join(dist, name)
        with open(path, "rb") as f:
            body = f.read()
        # as tools/embed_assets.py compresses it
        gz = len(gzip.compress(body, compresslevel=9, mtime=0))
        total += gz
        print(f"{name:12} {len(body):8} bytes, {gz:8} gzip ({kib(gz)})")
    print(f"{'page':12} {total:8} bytes gzip ({kib(total)}), budget {page_max} ({kib(page_max)})")
    if total > page_max:
        over.append(f"the page is {total} bytes gzip, over the budget of {page_max}")
    with open(os.path.join(dist, "sizes.json"), encoding="utf-8") as f:
        packages = json.load(f)["packages"]
    for name, size in sorted(packages.items(), key=lambda kv: -kv[1]):
        print(f"  in app.js: {name:20} {size:8} bytes minified ({kib(size)})")
        if name != "(kanaria)" and size > package_max:
            over.append(f"'{name}' puts {size} bytes into app.js, over the budget of "
                        f"{package_max} per package")
    for line in over:
        print(f"ui_budget: {line}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
