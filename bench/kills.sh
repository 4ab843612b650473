#!/usr/bin/env bash
# Workflow runs under random kills: RUNS (default 1,000) runs of a 5-step
# workflow (each step sleeps 300 ms) on one node (embedded store, the
# defaults), the node killed with
# -9 at random moments (every 0.3–1.5 s) and restarted, until every run has
# ended (its runs are looked at meanwhile, through each restart). Checks that none is lost (each succeeds with the output of its five
# steps in order) and that no step recorded in the journal ran again
# afterwards: as each step is seen recorded its execution count
# (kept by the guest itself, `examples/workflow-step`, under `ran/RUN.STEP`)
# is read, and at the end it must be the same. Steps in flight at a kill run
# again (at least once): those are counted and reported.
#
#   bench/kills.sh          # RUNS=1000 SEED=1 by default
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RUNS="${RUNS:-1000}"
SEED="${SEED:-1}"
target="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --quiet --bin weft
bash scripts/build-guests.sh "$target/guests-out" 2>/dev/null
work="$(mktemp -d)"
trap 'pkill -9 -f "$work/data" 2>/dev/null || true; rm -rf "$work"' EXIT
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"

module="$target/guests-out/workflow-step.wasm"
{
    echo "manifest_version = 1"
    for s in s1 s2 s3 s4 s5; do
        printf '[functions.%s]\nmodule = "%s"\nclock = true\nkey_value_stores = ["default"]\nconfig = { sleep_ms = "300" }\n' "$s" "$module"
    done
    printf '[functions.counter]\nmodule = "%s"\nkey_value_stores = ["default"]\nconfig = { report = "yes" }\n' "$module"
    echo '[workflows.five]'
    echo 'steps = ["s1", "s2", "s3", "s4", "s5"]'
} >"$work/weft.toml"

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; $RUNS runs, seed $SEED"
WEFT="$target/release/weft" WORK="$work" PORT="$port" RUNS="$RUNS" SEED="$SEED" python3 - <<'EOF'
import json, os, random, subprocess, threading, time, urllib.error, urllib.request

weft, work, port = os.environ["WEFT"], os.environ["WORK"], os.environ["PORT"]
runs_n, rng = int(os.environ["RUNS"]), random.Random(int(os.environ["SEED"]))
url = f"http://127.0.0.1:{port}"

def up():
    err = open(f"{work}/node.err", "a")
    p = subprocess.Popen([weft, "up", "--listen", f"127.0.0.1:{port}", "--data", f"{work}/data"],
                         stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "RUST_LOG": "warn"})
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=1)
            return p
        except Exception:
            time.sleep(0.05)
    raise SystemExit("the node did not come up; see node.err")

def req(method, path, body=b""):
    # A busy node answers 503 or 429 (every slot taken by sleeping steps):
    # tried again, as a client would.
    for _ in range(1000):
        r = urllib.request.Request(url + path, data=body if method == "POST" else None, method=method)
        try:
            with urllib.request.urlopen(r, timeout=60) as resp:
                return resp.read()
        except urllib.error.HTTPError as e:
            if e.code not in (429, 503):
                raise
            time.sleep(0.05)
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)  # killed: up again shortly
    raise SystemExit(f"{method} {path}: busy for too long")

node = up()
subprocess.run([weft, "deploy", "--manifest", f"{work}/weft.toml"], check=True,
               env={**os.environ, "WEFT_URL": url}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
t0 = time.time()
ids = [json.loads(req("POST", "/v1/workflows/five/runs", f"r{i}".encode()))["id"] for i in range(runs_n)]
seen, ended, kills = {}, {}, 0

def ran(key):
    return int(req("POST", "/fn/counter", key.encode()))

def look():
    for i, rid in enumerate(ids):
        if rid in ended:
            continue
        run = json.loads(req("GET", f"/v1/runs/{rid}"))
        for s in run["steps"]:
            key = f"{rid}.{s['name']}"
            if s["state"] == "succeeded" and key not in seen:
                seen[key] = ran(key)
                assert seen[key] >= 1, f"{key} recorded but never ran"
        if run["state"] != "running":
            ended[rid] = run

# The kills land at random while the runs go on and are looked at.
done = threading.Event()
def killer():
    global node, kills
    while not done.wait(rng.uniform(0.3, 1.5)):
        node.kill(); node.wait(); kills += 1
        node = up()
k = threading.Thread(target=killer)
k.start()
while len(ended) < len(ids):
    look()
done.set(); k.join()
elapsed = time.time() - t0
lost = [rid for i, rid in enumerate(ids)
        if ended[rid]["state"] != "succeeded" or ended[rid]["output"] != f"r{i}-s1-s2-s3-s4-s5"]
again = [k for k, n in seen.items() if ran(k) != n]
twice = sum(1 for k, n in seen.items() if n > 1)
node.kill(); node.wait()
print(f"\n| runs | kills | steps recorded | runs lost | recorded steps run again | steps run more than once (in flight at a kill) | wall time |")
print("| --- | --- | --- | --- | --- | --- | --- |")
print(f"| {len(ids)} | {kills} | {len(seen)} | {len(lost)} | {len(again)} | {twice} | {elapsed:.0f} s |")
if lost or again or len(seen) != 5 * len(ids):
    raise SystemExit(f"FAILED: lost {lost[:5]}, ran again {again[:5]}, {len(seen)} steps recorded")
EOF
