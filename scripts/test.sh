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

target="${CARGO_TARGET_DIR:-$PWD/target}"
guests="$target/guests-out"
step "guest programs -> $guests"
bash scripts/build-guests.sh "$guests"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
export WEFT_GUESTS="$guests"
if [[ "${1:-}" == "--" ]]; then
    shift
    cargo test --workspace --locked -- "$@"
else
    cargo test --workspace --locked
fi
