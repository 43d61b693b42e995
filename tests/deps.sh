#!/usr/bin/env bash
# Install the Debian 12 packages kanaria needs to build, test and run its demo, when missing.
# Prints what it installs; does nothing (and needs no network) when everything is present.
set -euo pipefail

packages=(
    build-essential cmake pkg-config git
    libgit2-dev libyaml-dev libcurl4-openssl-dev libjansson-dev libuv1-dev
    libcmocka-dev libsqlite3-dev libh2o-dev libssl-dev libxml2-dev
    haproxy prometheus curl python3 python3-kubernetes
    clang libclang-rt-14-dev
    chromium  # the web UI's browser tests (tests/ui/), headless, driven by npm playwright-core
    debhelper  # the .deb of debian/ (tests/packaging/deb.sh), 16 small packages with its tools
    zsh fish   # `zsh -n` and `fish -n` check the completions kanaria generates (install_tree)
    tzdata     # the time zones of freeze windows (test_freeze, test_engine)
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

# node (18 or later) and npm to build the web UI (ui/, bundled into the binary) and for the schema
# check of generated Kubernetes objects (tests/kube/): Debian's own unless some node is on the
# PATH already
for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        missing+=("$([ "$tool" = node ] && echo nodejs || echo npm)")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
