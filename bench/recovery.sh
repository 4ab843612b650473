#!/usr/bin/env bash
# Recovery of a workflow run whose node is killed with -9 mid-run, in a
# 2-node fabric (one nats-server with JetStream on loopback; both nodes keep
# the workflows' journal in the fabric's JetStream through `[state]
# function`): the time from the kill until the next step of the run starts
# on the other node. Measured with the fabric's default beat (1 s, a peer
# down after 3 missed beats) and with 300 ms beats.
#
#   bench/recovery.sh            # ROUNDS (default 5) kills per beat
#
# Each round starts a 6-step run (each step sleeps 300 ms) at node `b`,
# waits until its second step is recorded, kills `b` with -9, and reads from
# `a` when the next step started there (the step record's `started_ms`,
# which is the start of its last attempt); `b` is then restarted for the
# next round.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS="${ROUNDS:-5}"
target="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --quiet --bin weft
bash scripts/build-guests.sh "$target/guests-out" 2>/dev/null
weft="$target/release/weft"
module="$target/guests-out/workflow-step.wasm"
work="$(mktemp -d)"
trap 'kill -9 $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
nats_port="$(free_port)"
nats-server -a 127.0.0.1 -p "$nats_port" -js -sd "$work/js" >"$work/nats.log" 2>&1 &
for _ in $(seq 50); do (echo >"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && break; sleep 0.1; done

declare -A URL PID
start_node() { # start_node NAME BEAT
    local name="$1" beat="$2"
    cat >"$work/$name.toml" <<EOF
[fabric]
url = "nats://127.0.0.1:$nats_port"
name = "$name"
heartbeat = "$beat"

[kv.shared]
backend = "fabric"

[state]
function = "shared"
EOF
    : >"$work/$name.out"
    RUST_LOG=warn "$weft" up --listen 127.0.0.1:0 --data "$work/$name-data" --config "$work/$name.toml" \
        >"$work/$name.out" 2>>"$work/$name.err" &
    PID[$name]=$!
    for _ in $(seq 100); do grep -q http "$work/$name.out" 2>/dev/null && break; sleep 0.1; done
    URL[$name]="$(grep -o 'http://[0-9.:]*' "$work/$name.out" | head -1)"
}
on() { local n="$1"; shift; WEFT_URL="${URL[$n]}" "$weft" "$@"; }
sees() { on "$1" nodes --json | python3 -c "import json,sys; n=[x for x in json.load(sys.stdin)['nodes'] if x['name']=='$2']; sys.exit(0 if n and n[0]['up'] else 1)"; }
now_ms() { date +%s%3N; }

cat >"$work/weft.toml" <<EOF
manifest_version = 1
$(for s in s1 s2 s3 s4 s5 s6; do printf '[functions.%s]\nmodule = "%s"\nclock = true\nconfig = { sleep_ms = "300" }\n' "$s" "$module"; done)
[workflows.six]
steps = ["s1", "s2", "s3", "s4", "s5", "s6"]
EOF

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; $ROUNDS kills per beat"
echo
echo "| beat (down after 3 missed) | kill → next step starts elsewhere, ms: median (min–max) | rounds |"
echo "| --- | --- | --- |"
for beat in 1s 300ms; do
    rm -rf "$work"/a-data "$work"/b-data
    start_node a "$beat"
    start_node b "$beat"
    for _ in $(seq 100); do sees a b && sees b a && break; sleep 0.2; done
    on a deploy --manifest "$work/weft.toml" >/dev/null 2>&1
    gaps=()
    for round in $(seq "$ROUNDS"); do
        for _ in $(seq 100); do on b workflow ls --json >/dev/null 2>&1 && on b ls --json | grep -q '"s6"' && break; sleep 0.2; done
        id="$(on b workflow start six --data "r$round")"
        for _ in $(seq 200); do
            on a workflow show "$id" --json | python3 -c "import json,sys; r=json.load(sys.stdin); sys.exit(0 if [s for s in r['steps'] if s['name']=='s2'][0]['state']=='succeeded' else 1)" && break
            sleep 0.02
        done
        kill -9 "${PID[b]}"
        killed="$(now_ms)"
        { wait "${PID[b]}"; } 2>/dev/null || true
        for _ in $(seq 300); do
            [[ "$(on a workflow show "$id" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')" == succeeded ]] && break
            sleep 0.1
        done
        gap="$(on a workflow show "$id" --json | python3 -c "
import json,sys
r=json.load(sys.stdin)
assert r['state']=='succeeded' and r['node']=='a', (r['state'], r['node'])
print(min(s['started_ms'] for s in r['steps'] if s['started_ms'] >= $killed) - $killed)")"
        gaps+=("$gap")
        start_node b "$beat"
        for _ in $(seq 100); do sees a b && break; sleep 0.2; done
    done
    sorted=($(printf '%s\n' "${gaps[@]}" | sort -n))
    echo "| $beat | ${sorted[$(( ${#sorted[@]} / 2 ))]} (${sorted[0]}–${sorted[-1]}) | ${gaps[*]} |"
    # The same nats-server serves the next beat: its JetStream keeps the
    # journal, which the next pair of nodes (new data dirs) shares.
    kill -9 "${PID[a]}" "${PID[b]}" 2>/dev/null || true
    { wait "${PID[a]}" "${PID[b]}"; } 2>/dev/null || true
done
