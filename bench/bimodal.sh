#!/usr/bin/env bash
# SledgeEDF's bimodal experiment (gwsystems/sledge-serverless-framework,
# tests/fibonacci/bimodal) at this machine's scale: an urgent class, fib(10)
# with a 2 ms deadline, against a slow class, fib(36) with a deadline of six
# times its solo time, each driven by `hey` with 8 clients; the slow class
# starts 5 s early, the urgent one runs 15 s; estimates are warmed with 16 runs
# of each first. The urgent clients are held to 50 requests/s each: on two
# cores shared with the load generator, 8 urgent clients at full speed
# saturate the machine by themselves (3,550 requests/s), and what would be
# measured is that saturation, not the scheduling. Under three node configurations, in turn on fresh nodes:
#
#   fifo           scheduler = "fifo", unmeetable = "run"
#   edf            scheduler = "edf",  unmeetable = "run"
#   edf+admission  scheduler = "edf",  unmeetable = "refuse" (the default)
#
# Reported per class, as Sledge does: success (200 within the deadline, at the
# client), throughput (200s per second), p50 / p90 / p99 / p100 of the 200s,
# and the node's own count of deadlines met, missed and refused. Before the
# mixed load each node serves the urgent class alone for 5 s: its solo p99.
#
#   bench/bimodal.sh
#
# Environment: ROUNDS (default 3), CLIENTS (8), URGENT_QPS (50 per client, 0:
# unlimited), DURATION (15, seconds), LEAD (5), URGENT_N (10), SLOW_N (36),
# URGENT_DEADLINE (2ms), SLOW_DEADLINE
# (default: 6 × fib(SLOW_N)'s median solo time here), MODES.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS="${ROUNDS:-3}"
CLIENTS="${CLIENTS:-8}"
URGENT_QPS="${URGENT_QPS:-50}"
DURATION="${DURATION:-15}"
LEAD="${LEAD:-5}"
URGENT_N="${URGENT_N:-10}"
SLOW_N="${SLOW_N:-36}"
URGENT_DEADLINE="${URGENT_DEADLINE:-2ms}"
MODES="${MODES:-fifo edf edf+admission}"
command -v hey >/dev/null || { apt-get update && apt-get install -y hey; }

target="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --quiet --bin weft
cargo build --quiet --release --target wasm32-wasip2 --bin fib \
    --manifest-path bench/guests/rust/Cargo.toml --target-dir "$target/guests"
fib="$target/guests/wasm32-wasip2/release/fib.wasm"
weft="$target/release/weft"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

node_pid=""
start_node() { # start_node CONFIG_TEXT -> sets $url
    [[ -n "$node_pid" ]] && { kill "$node_pid"; wait "$node_pid" 2>/dev/null || true; }
    rm -rf "$work/data"
    printf '%s\n' "$1" >"$work/node.toml"
    RUST_LOG=warn "$weft" up --listen 127.0.0.1:0 --data "$work/data" --config "$work/node.toml" \
        >"$work/weft.out" 2>"$work/weft.err" &
    node_pid=$!
    for _ in $(seq 100); do grep -q http "$work/weft.out" 2>/dev/null && break; sleep 0.1; done
    url="$(grep -o 'http://[0-9.:]*' "$work/weft.out" | head -1)"
}
post() { curl -sf -X POST --data "$2" "$url/fn/$1" >/dev/null; }

# The slow class's solo time, for its deadline.
if [[ -z "${SLOW_DEADLINE:-}" ]]; then
    start_node ''
    WEFT_URL="$url" "$weft" deploy probe "$fib" >/dev/null 2>&1
    times=()
    for _ in 1 2 3 4 5; do
        times+=("$(curl -sf -o /dev/null -w '%{time_total}' -X POST --data "$SLOW_N" "$url/fn/probe")")
    done
    solo_ms="$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {printf "%d", a[3]*1000}')"
    SLOW_DEADLINE="$((solo_ms * 6))ms"
fi

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
echo "urgent: fib($URGENT_N), deadline $URGENT_DEADLINE; slow: fib($SLOW_N), deadline $SLOW_DEADLINE" \
    "(fib($SLOW_N) alone: ${solo_ms:-?} ms); hey -c $CLIENTS per class (urgent at $URGENT_QPS/s each); slow ${LEAD}s early," \
    "urgent ${DURATION}s; $ROUNDS rounds"

for round in $(seq "$ROUNDS"); do
    for mode in $MODES; do
        case "$mode" in
            fifo) config=$'scheduler = "fifo"\nunmeetable = "run"' ;;
            edf) config=$'scheduler = "edf"\nunmeetable = "run"' ;;
            edf+admission) config='scheduler = "edf"' ;;
            *) echo "unknown mode $mode" >&2; exit 2 ;;
        esac
        start_node "$config"
        WEFT_URL="$url" "$weft" deploy urgent "$fib" --deadline "$URGENT_DEADLINE" --timeout 1s >/dev/null 2>&1
        WEFT_URL="$url" "$weft" deploy slow "$fib" --deadline "$SLOW_DEADLINE" --timeout 60s >/dev/null 2>&1
        for _ in $(seq 16); do post urgent "$URGENT_N"; post slow "$SLOW_N"; done
        hey -z 5s -c "$CLIENTS" -q "$URGENT_QPS" -m POST -d "$URGENT_N" -o csv "$url/fn/urgent" \
            >"$work/$round-$mode-solo.csv"
        curl -sf "$url/metrics" >"$work/$round-$mode-before.prom"
        hey -z "$((LEAD + DURATION))s" -c "$CLIENTS" -m POST -d "$SLOW_N" -o csv "$url/fn/slow" \
            >"$work/$round-$mode-slow.csv" &
        slow=$!
        sleep "$LEAD"
        hey -z "${DURATION}s" -c "$CLIENTS" -q "$URGENT_QPS" -m POST -d "$URGENT_N" -o csv "$url/fn/urgent" \
            >"$work/$round-$mode-urgent.csv"
        wait "$slow"
        curl -sf "$url/metrics" >"$work/$round-$mode-after.prom"
    done
done
kill "$node_pid" 2>/dev/null || true

python3 - "$work" "$ROUNDS" "$MODES" "$URGENT_DEADLINE" "$SLOW_DEADLINE" "$DURATION" "$LEAD" <<'EOF'
import csv, re, statistics, sys
work, rounds, modes = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
def secs(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s)", text)
    return float(m[1]) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[m[2]]
deadline = {"urgent": secs(sys.argv[4]), "slow": secs(sys.argv[5])}
duration = {"urgent": float(sys.argv[6]), "slow": float(sys.argv[6]) + float(sys.argv[7])}

def load(path):
    with open(path) as f:
        return [(float(r["response-time"]), int(r["status-code"])) for r in csv.DictReader(f)]

def pct(xs, q):
    xs = sorted(xs)
    return xs[max(0, min(len(xs) - 1, int(q * len(xs) + 0.999999) - 1))] if xs else float("nan")

def counts(path, fn):
    out = {}
    for line in open(path):
        m = re.match(r'weft_deadlines_total\{function="%s",outcome="(\w+)"\} (\S+)' % fn, line)
        if m:
            out[m[1]] = float(m[2])
    return out

def med(xs):
    return statistics.median(xs)

def spread(xs):
    return f"{med(xs):.1f} ({min(xs):.1f}–{max(xs):.1f})"

print()
print("| mode | class | success % | throughput /s | p50 ms | p90 ms | p99 ms | p100 ms | solo p99 ms | p99 ÷ solo p99 | node: met / missed / refused |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for mode in modes:
    for cls in ["urgent", "slow"]:
        rows = {k: [] for k in ["ok", "tput", "p50", "p90", "p99", "p100", "solo", "ratio"]}
        node = {"met": [], "missed": [], "refused": []}
        for r in range(1, rounds + 1):
            got = load(f"{work}/{r}-{mode}-{cls}.csv")
            ok = [t for t, s in got if s == 200]
            within = [t for t, s in got if s == 200 and t <= deadline[cls]]
            rows["ok"].append(100.0 * len(within) / max(1, len(got)))
            rows["tput"].append(len(ok) / duration[cls])
            for q, k in [(0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (1.0, "p100")]:
                rows[k].append(1e3 * pct(ok, q))
            if cls == "urgent":
                solo = [t for t, s in load(f"{work}/{r}-{mode}-solo.csv") if s == 200]
                rows["solo"].append(1e3 * pct(solo, 0.99))
                rows["ratio"].append(rows["p99"][-1] / rows["solo"][-1])
            before = counts(f"{work}/{r}-{mode}-before.prom", cls)
            after = counts(f"{work}/{r}-{mode}-after.prom", cls)
            for k in node:
                node[k].append(after.get(k, 0) - before.get(k, 0))
        solo = spread(rows["solo"]) if rows["solo"] else "—"
        ratio = spread(rows["ratio"]) if rows["ratio"] else "—"
        n = " / ".join(f"{med(node[k]):.0f}" for k in ["met", "missed", "refused"])
        print(f"| {mode} | {cls} | {spread(rows['ok'])} | {spread(rows['tput'])} | {spread(rows['p50'])} | "
              f"{spread(rows['p90'])} | {spread(rows['p99'])} | {spread(rows['p100'])} | {solo} | {ratio} | {n} |")
print()
print("Each cell: the median of the rounds (min–max). Success: responses 200 within the deadline at the client,")
print("of all responses; percentiles of the 200s; node: the node's weft_deadlines_total during the mixed run.")
EOF
