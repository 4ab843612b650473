#!/usr/bin/env bash
# Builds every WebAssembly guest in the repository and copies the results,
# with flat names, into OUTDIR:
#
#   examples/        rust-command.wasm, c-command.wasm, http-hello.wasm, http-counter.wasm, and
#                    the weft-sdk examples (kv-counter.wasm, fetch.wasm, state-counter.wasm, ...)
#   tests/guests/    one <bin>.wasm per src/bin/<bin>.rs, <bin>-p2.wasm components
#                    of a few, plus wat/*.wat as-is
#   bench/guests/c/  bench-<name>.wasm per <name>.c
#
# Installs what it needs first (rustup targets; clang, lld and wasi-libc from
# Debian when missing). Cargo builds go to ${CARGO_TARGET_DIR:-<repo>/target}/guests
# so they stay warm between runs; a run with nothing changed takes seconds.
#
# Usage: scripts/build-guests.sh OUTDIR
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi

step() { echo "build-guests: $*" >&2; }

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$1"
OUTDIR="$(cd "$1" && pwd)"

TARGET_BASE="${CARGO_TARGET_DIR:-$REPO/target}"
case "$TARGET_BASE" in
    /*) ;;
    *) TARGET_BASE="$PWD/$TARGET_BASE" ;;
esac
GUEST_TARGET="$TARGET_BASE/guests"

# ---------------------------------------------------------------- toolchain
step "rustup targets wasm32-wasip1 wasm32-wasip2"
if command -v rustup >/dev/null 2>&1; then
    rustup target add wasm32-wasip1 wasm32-wasip2 >/dev/null 2>&1 ||
        rustup target add wasm32-wasip1 wasm32-wasip2
else
    step "warning: rustup not found; assuming the wasm targets are installed"
fi

c_toolchain_ok() {
    command -v clang >/dev/null 2>&1 &&
        command -v wasm-ld >/dev/null 2>&1 &&
        [[ -f /usr/lib/wasm32-wasi/libc.a ]] &&
        [[ -f "$(clang --target=wasm32-wasi -print-libgcc-file-name 2>/dev/null)" ]]
}

if ! c_toolchain_ok; then
    step "installing clang, lld, wasi-libc (apt-get)"
    SUDO=""
    if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    fi
    $SUDO apt-get update >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y \
        clang lld wasi-libc libclang-rt-dev-wasm32 >&2
    if ! c_toolchain_ok; then
        echo "build-guests: clang/wasm-ld/wasi-libc still missing after apt-get" >&2
        exit 1
    fi
fi

# Keep the name section (readable trap backtraces) but drop DWARF.
CFLAGS=(--target=wasm32-wasi -O2 -Wall -Wextra -Wl,--strip-debug)

cc_wasm() { # cc_wasm OUT SRC...
    local out="$1"
    shift
    clang "${CFLAGS[@]}" "$@" -lm -o "$out"
}

cargo_build() { # cargo_build MANIFEST TARGET [CARGO ARGS...]
    local manifest="$1" target="$2"
    shift 2
    cargo build --quiet --release --manifest-path "$manifest" \
        --target "$target" --target-dir "$GUEST_TARGET" "$@"
}

# ---------------------------------------------------------------- examples
step "examples: rust-command (wasm32-wasip1)"
cargo_build "$REPO/examples/Cargo.toml" wasm32-wasip1 -p rust-command
cp -f "$GUEST_TARGET/wasm32-wasip1/release/rust-command.wasm" "$OUTDIR/rust-command.wasm"

step "examples: http-hello, http-counter (wasm32-wasip2 components)"
cargo_build "$REPO/examples/Cargo.toml" wasm32-wasip2 -p http-hello -p http-counter
cp -f "$GUEST_TARGET/wasm32-wasip2/release/http_hello.wasm" "$OUTDIR/http-hello.wasm"
cp -f "$GUEST_TARGET/wasm32-wasip2/release/http_counter.wasm" "$OUTDIR/http-counter.wasm"

SDK_EXAMPLES=(kv-counter fetch chain events sensor tick flaky state-counter workflow-step orchestrator)
step "examples: ${SDK_EXAMPLES[*]} (weft-sdk, wasm32-wasip2 components)"
args=()
for name in "${SDK_EXAMPLES[@]}"; do args+=(-p "$name"); done
cargo_build "$REPO/examples/Cargo.toml" wasm32-wasip2 "${args[@]}"
for name in "${SDK_EXAMPLES[@]}"; do
    cp -f "$GUEST_TARGET/wasm32-wasip2/release/$name.wasm" "$OUTDIR/$name.wasm"
done

step "examples: c-command (clang)"
cc_wasm "$OUTDIR/c-command.wasm" "$REPO/examples/c-command/hello.c"

# ---------------------------------------------------------------- test guests
step "tests/guests: weft-test-guests (wasm32-wasip1)"
cargo_build "$REPO/tests/guests/Cargo.toml" wasm32-wasip1 --bins
for src in "$REPO"/tests/guests/src/bin/*.rs; do
    name="$(basename "$src" .rs)"
    cp -f "$GUEST_TARGET/wasm32-wasip1/release/$name.wasm" "$OUTDIR/$name.wasm"
done

# The same programs as wasi:cli/command components (wasm32-wasip2), for the
# tests of command components: <name>-p2.wasm.
step "tests/guests: echo, exit-code, stateful, http-out, config-rc1 as components (wasm32-wasip2)"
cargo_build "$REPO/tests/guests/Cargo.toml" wasm32-wasip2 --bin echo --bin exit-code --bin stateful --bin http-out --bin config-rc1
for name in echo exit-code stateful http-out config-rc1; do
    cp -f "$GUEST_TARGET/wasm32-wasip2/release/$name.wasm" "$OUTDIR/$name-p2.wasm"
done

step "tests/guests: wat fixtures"
cp -f "$REPO"/tests/guests/wat/*.wat "$OUTDIR/"

# ---------------------------------------------------------------- benchmarks
for src in "$REPO"/bench/guests/c/*.c; do
    name="$(basename "$src" .c)"
    step "bench/guests/c: $name (clang)"
    cc_wasm "$OUTDIR/bench-$name.wasm" "$src"
done

# ---------------------------------------------------------------- listing
step "done: $OUTDIR"
(cd "$OUTDIR" && ls -l -- *.wasm *.wat) >&2
