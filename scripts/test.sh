#!/usr/bin/env bash
# The test command of protoactor-rs: `bash scripts/test.sh` from anywhere.
#
# Idempotent and meant for a fresh Debian machine: it installs (with apt, only
# when missing) and starts the servers the integration tests need, then runs
# every test of the workspace, doc tests included. Extra arguments go to the
# `cargo test` run (e.g. `bash scripts/test.sh -- --nocapture`).
# `bash scripts/test.sh --setup-only` installs what is missing and stops
# (CI runs it before clippy: etcd-client's build needs protoc).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '\n==> %s\n' "$*"; }

# ---------------------------------------------------------------------------
# Servers for integration tests.
#
# Provider and lookup crates test against real servers (etcd, ZooKeeper,
# Redis, ...). Each test starts its own server on free loopback ports with a
# temporary data dir (crates/testkit) and stops it when done; this script
# only makes sure the binaries are installed. When a new server is needed,
# add its Debian package(s) to APT_PACKAGES below.
# ---------------------------------------------------------------------------

# Debian packages the tests need: the servers, protoc with the well-known
# protos for etcd-client's build script, and python3-venv for the MongoDB
# stand-in below.
APT_PACKAGES=(etcd-server zookeeper redis-server postgresql protobuf-compiler libprotobuf-dev python3-venv)

# The MongoDB stand-in for the Mongo identity lookup tests: SecantusDB (a
# MongoDB wire-protocol server in Python, GPL: run as a separate process,
# never linked) in a pinned virtualenv that crates/testkit/src/mongo.rs
# launches. Set MONGODB_URI to run those tests against a real MongoDB.
SECANTUS_VERSION=0.7.0b3
SECANTUS_VENV="${HOME}/.cache/protoactor-rs/secantus-${SECANTUS_VERSION}"

# Creates the virtualenv and installs SecantusDB, unless already there.
secantus_install_missing() {
    if [ -x "${SECANTUS_VENV}/bin/python3" ] && "${SECANTUS_VENV}/bin/python3" -c 'import secantus' 2>/dev/null; then
        return 0
    fi
    log "installing the MongoDB stand-in (secantusdb==${SECANTUS_VERSION}) in ${SECANTUS_VENV}"
    rm -rf "${SECANTUS_VENV}"
    python3 -m venv "${SECANTUS_VENV}"
    "${SECANTUS_VENV}/bin/pip" install -q "secantusdb==${SECANTUS_VERSION}"
}

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

# ---------------------------------------------------------------------------

if [ "${#APT_PACKAGES[@]}" -gt 0 ]; then
    apt_install_missing "${APT_PACKAGES[@]}"
fi
secantus_install_missing
if [ "${1:-}" = "--setup-only" ]; then
    log "setup done"
    exit 0
fi

log "cargo test --workspace --all-targets --no-fail-fast"
cargo test --workspace --all-targets --no-fail-fast "$@"

log "cargo test --workspace --doc --no-fail-fast"
cargo test --workspace --doc --no-fail-fast

log "all tests passed"
