#!/usr/bin/env bash
# Preemption precision: how far past its timeout a CPU-bound guest that
# never returns (tests/guests loop-forever) is stopped, at timeouts of 5 ms,
# 50 ms and 1 s, on a node with its defaults. Measured twice: at the node
# (the invocation's wall time, from its log line) and at the client (curl's
# total time for the 504, with the HTTP round trip and the sandbox's start).
#
#   bench/stop.sh            # RUNS (default 20) per timeout
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS="${RUNS:-20}"
target="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --quiet --bin weft
bash scripts/build-guests.sh "$target/guests-out" >/dev/null 2>&1
weft="$target/release/weft"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
RUST_LOG=warn,weft::invocation=debug "$weft" up --listen 127.0.0.1:0 --data "$work/data" >"$work/weft.out" 2>"$work/weft.err" &
for _ in $(seq 100); do grep -q http "$work/weft.out" 2>/dev/null && break; sleep 0.1; done
url="$(grep -o 'http://[0-9.:]*' "$work/weft.out" | head -1)"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; $RUNS runs per timeout"
echo
echo "| timeout | at the node: stopped after, median (min–max) ms | past the timeout, median (max) | at the client: median (min–max) ms | past the timeout, median (max) |"
echo "| --- | --- | --- | --- | --- |"
for t in 5ms 50ms 1s; do
    name="spin-${t}"
    WEFT_URL="$url" "$weft" deploy "$name" "$target/guests-out/loop-forever.wasm" --timeout "$t" >/dev/null 2>&1
    times=()
    before="$(grep -c "function=$name " "$work/weft.err" || true)"
    for _ in $(seq "$RUNS"); do
        code_time="$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -X POST "$url/fn/$name")"
        [[ "${code_time%% *}" == 504 ]] || { echo "expected 504, got $code_time" >&2; exit 1; }
        times+=("${code_time##* }")
    done
    sleep 0.2
    walls="$(grep "function=$name " "$work/weft.err" | tail -n +"$((before + 1))" | grep -o 'wall_us=[0-9]*' | cut -d= -f2 | tr '\n' ',')"
    python3 - "$t" "$walls" "${times[@]}" <<'PY'
import statistics, sys
t = sys.argv[1]
limit = float(t[:-2]) / 1e3 if t.endswith("ms") else float(t[:-1])
walls = [int(x) / 1e6 for x in sys.argv[2].split(",") if x]
xs = [float(x) for x in sys.argv[3:]]
def cols(v):
    med = statistics.median(v)
    return (f"{med*1e3:.2f} ({min(v)*1e3:.2f}–{max(v)*1e3:.2f}) | "
            f"{(med/limit-1)*100:+.1f}% ({(max(v)/limit-1)*100:+.1f}%)")
assert len(walls) == len(xs), f"{len(walls)} log lines for {len(xs)} requests"
print(f"| {t} | {cols(walls)} | {cols(xs)} |")
PY
done
