#!/usr/bin/env bash
# The test command of protoactor-rs: `bash scripts/test.sh` from anywhere.
#
# Idempotent and meant for a fresh Debian machine: it installs (with apt, only
# when missing) and starts the servers the integration tests need, then runs
# every test of the workspace, doc tests included. Extra arguments go to the
# `cargo test` run (e.g. `bash scripts/test.sh -- --nocapture`).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '\n==> %s\n' "$*"; }

# ---------------------------------------------------------------------------
# Servers for integration tests.
#
# Provider and lookup crates test against real servers (etcd, ZooKeeper,
# Redis, ...). When one is needed:
#   1. add its Debian package(s) to APT_PACKAGES below;
#   2. add a start_<server> function that starts it on loopback only if it is
#      not already answering, waits (with a deadline) until it answers, and
#      exports the address the tests read (e.g. PROTOACTOR_TEST_REDIS_URL);
#   3. call it from start_servers.
# ---------------------------------------------------------------------------

# Debian packages the tests need. Empty for now: no test needs a server yet.
APT_PACKAGES=()

# Installs the given Debian packages, but only those not installed already,
# so a second run does nothing (and needs no network).
apt_install_missing() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$pkg")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    log "installing missing packages: ${missing[*]}"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Starts every server the tests need (none yet).
start_servers() {
    :
}

# ---------------------------------------------------------------------------

if [ "${#APT_PACKAGES[@]}" -gt 0 ]; then
    apt_install_missing "${APT_PACKAGES[@]}"
fi
start_servers

log "cargo test --workspace --all-targets --no-fail-fast"
cargo test --workspace --all-targets --no-fail-fast "$@"

log "cargo test --workspace --doc --no-fail-fast"
cargo test --workspace --doc --no-fail-fast

log "all tests passed"
