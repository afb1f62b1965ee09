#!/usr/bin/env bash
# Best effort, before `make test`: provide `systemd-analyze`, so tests/test_service.py can
# verify the systemd units engram renders. It never fails the build: without the tool that
# one test is skipped with a reason. Fast and silent when the tool is already there.
command -v systemd-analyze >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "test-setup: no systemd-analyze (and no root apt-get to install it);" \
       "systemd unit verification will be skipped" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
install_systemd() { timeout 600 apt-get install -y -qq --no-install-recommends systemd >/dev/null 2>&1; }
# The package lists may be missing or stale in a fresh container: update only if needed.
install_systemd || { timeout 600 apt-get update -qq >/dev/null 2>&1 && install_systemd; } \
  || echo "test-setup: could not install systemd; systemd unit verification will be skipped" >&2
exit 0
