#!/usr/bin/env bash
# HTTP requests/s and p99 latency of the same hello-world wasi:http component
# (examples/http-hello) on Weft and on `wasmtime serve -Scli`, at concurrency
# 1, 16 and 64, alternating the two servers, with wrk as the load generator.
#
#   bench/http.sh /path/to/wasmtime        # a wasmtime 48 CLI, built with e.g.
#     cargo install wasmtime-cli --version 48.0.8 --locked --root /tmp/wasmtime-cli \
#       --no-default-features --features run,serve,cranelift,pooling-allocator,parallel-compilation,cache,component-model-async
#
# Environment: DURATION (per run, default 10s), ROUNDS (default 3). Each round
# runs Weft then wasmtime; the ratio is taken per round, then its median.
# Everything listens on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

WASMTIME="${1:?usage: bench/http.sh /path/to/wasmtime}"
DURATION="${DURATION:-10s}"
ROUNDS="${ROUNDS:-3}"
command -v wrk >/dev/null || { apt-get update && apt-get install -y wrk; }

target="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --quiet --bin weft
bash scripts/build-guests.sh "$target/guests-out" 2>/dev/null
component="$target/guests-out/http-hello.wasm"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Weft: its defaults, logs at warn.
RUST_LOG=warn "$target/release/weft" up --listen 127.0.0.1:0 --data "$work/weft" >"$work/weft.out" 2>"$work/weft.err" &
for _ in $(seq 50); do grep -q http "$work/weft.out" 2>/dev/null && break; sleep 0.1; done
weft_url="$(grep -o 'http://[0-9.:]*' "$work/weft.out" | head -1)"
# Deployed with the defaults a new user gets (64 concurrent, a queue of 256).
WEFT_URL="$weft_url" "$target/release/weft" deploy hello "$component" >/dev/null 2>&1

wt_port="$(free_port)"
"$WASMTIME" serve -Scli --addr "127.0.0.1:$wt_port" "$component" >"$work/wasmtime.out" 2>&1 &
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$wt_port/" >/dev/null && break; sleep 0.1; done

weft_target="$weft_url/fn/hello/"
wt_target="http://127.0.0.1:$wt_port/"
curl -sf "$weft_target" | grep -q "hello from" || { echo "weft is not serving" >&2; exit 1; }
curl -sf "$wt_target" | grep -q "hello from" || { echo "wasmtime serve is not serving" >&2; exit 1; }

run() { # run URL CONC -> "rps p99_ms"
    local out
    out="$(wrk -t "$(( $2 < 2 ? 1 : 2 ))" -c "$2" -d "$DURATION" --latency "$1")"
    local rps p99
    rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
    p99="$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' <<<"$out")"
    echo "$rps $p99"
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; wrk ${DURATION} per run, ${ROUNDS} rounds, servers alternated"
echo
echo "| concurrency | Weft req/s | wasmtime serve req/s | ratio (median, min–max of rounds) | Weft p99 ms | wasmtime serve p99 ms |"
echo "| --- | --- | --- | --- | --- | --- |"
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for c in 1 16 64; do
    wr=(); tr=(); wp=(); tp=(); ratios=()
    for _ in $(seq "$ROUNDS"); do
        read -r a b <<<"$(run "$weft_target" "$c")"; wr+=("$a"); wp+=("$b")
        read -r x y <<<"$(run "$wt_target" "$c")"; tr+=("$x"); tp+=("$y")
        ratios+=("$(echo "$a / $x" | bc -l)")
    done
    lo="$(printf '%s\n' "${ratios[@]}" | sort -g | head -1)"
    hi="$(printf '%s\n' "${ratios[@]}" | sort -g | tail -1)"
    printf '| %s | %.0f | %.0f | %.2f× (%.2f–%.2f) | %s | %s |\n' "$c" "$(med "${wr[@]}")" "$(med "${tr[@]}")" \
        "$(med "${ratios[@]}")" "$lo" "$hi" "$(med "${wp[@]}")" "$(med "${tp[@]}")"
done
