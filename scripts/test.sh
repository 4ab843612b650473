#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs
# (rustup targets, Debian packages), builds the guest programs once, then
# checks formatting and lints and runs every test.
#
#   scripts/test.sh            # everything
#   scripts/test.sh -- NAME    # only tests whose name contains NAME
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { echo "== $*" >&2; }

step "toolchain"
rustup target add wasm32-wasip1 wasm32-wasip2 >/dev/null 2>&1 || rustup target add wasm32-wasip1 wasm32-wasip2
rustup component add rustfmt clippy >/dev/null 2>&1 || true

step "servers for the tests: redis-server, mosquitto, nats-server, their clients, openssl (Debian packages)"
have() { command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" ]]; }
if ! have redis-server || ! have redis-cli || ! have mosquitto || ! have mosquitto_pub || ! have mosquitto_sub || ! have nats-server || ! have openssl; then
    SUDO=""
    if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
    $SUDO apt-get update >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y redis-server redis-tools mosquitto mosquitto-clients nats-server openssl >&2
fi

target="${CARGO_TARGET_DIR:-$PWD/target}"
guests="$target/guests-out"
step "guest programs -> $guests"
bash scripts/build-guests.sh "$guests"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
(cd sdk && cargo clippy --locked --target wasm32-wasip2 -- -D warnings)

# Dependency checks, with tools kept beside the build (warm between runs).
tools="$target/tools"
tool() { # tool NAME VERSION: installs cargo-NAME VERSION into $tools once
    if ! "$tools/bin/cargo-$1" --version 2>/dev/null | grep -q "$2"; then
        step "installing cargo-$1 $2 (once per target directory)"
        cargo install --locked --quiet --root "$tools" "cargo-$1" --version "$2"
    fi
}
tool deny 0.20.2
tool machete 0.9.2
step "cargo deny: licenses, bans, sources"
"$tools/bin/cargo-deny" --log-level error check licenses bans sources
step "cargo machete: unused dependencies"
"$tools/bin/cargo-machete" --with-metadata

step "cargo test"
export WEFT_GUESTS="$guests"
if [[ "${1:-}" == "--" ]]; then
    shift
    cargo test --workspace --locked -- "$@"
else
    cargo test --workspace --locked
fi
