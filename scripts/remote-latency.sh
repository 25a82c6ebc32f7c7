#!/usr/bin/env bash
# Remote round trip and one-way throughput between two processes, as a user
# sees them: our client (its own default-config Remote, `request_future` of a
# 32-byte message echoed by an actor with `respond`) against a bare tonic
# bidirectional stream between two processes, and against the peers'
# remoting (coerce, ractor) and their `tonic-2p` from ../shared/bench-peers.
# Every run is a fresh pair of processes; the systems take turns within each
# round (the order rotates between rounds), so the drift of a shared machine
# hits them alike. Prints the median of each figure and of the per-round
# ratios. `protoactor-task` is our client's loop run in a spawned task rather
# than in `block_on` (the peers' clients await in `block_on`);
# `protoactor-parked` is the `block_on` loop with the request spin off
# (`ActorSystemConfig::with_request_spin(Duration::ZERO)`).
#
#   bash scripts/remote-latency.sh                # 7 rounds, with the peers
#   ROUNDS=11 PEERS=0 bash scripts/remote-latency.sh   # ours and bare tonic only
#   PEERS_SCALE=0.1 ROUNDS=1 bash scripts/remote-latency.sh   # smoke run
#
# The peers are built once into $PEERS_DIR (default /tmp/bench-peers; about
# 15 minutes cold on 2 cores) with only their coerce and ractor remoting.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-7}"
PEERS="${PEERS:-1}"
PEERS_SRC="${PEERS_SRC:-../shared/bench-peers}"
PEERS_DIR="${PEERS_DIR:-/tmp/bench-peers}"
PEERS_BIN="$PEERS_DIR/target/remote/release/peers"

if [[ "$PEERS" != 0 && ! -x "$PEERS_BIN" ]]; then
  [[ -d "$PEERS_DIR" ]] || cp -r "$PEERS_SRC" "$PEERS_DIR"
  (cd "$PEERS_DIR" && cargo build --release --quiet --no-default-features \
    --features coerce-remote,ractor-remote --target-dir target/remote)
fi
# OURS: an already built bench binary (to compare two builds, say).
OURS="${OURS:-$(cargo bench -p protoactor-remote --bench remote --no-run 2>&1 | sed -n 's/.*(\(.*remote-[0-9a-f]*\)).*/\1/p' | tail -1)}"
[[ -x "$OURS" ]] || { echo "could not build the remote bench" >&2; exit 1; }

# Each job prints `workload system value unit` lines; the peers' bare tonic
# workloads are renamed to the remote ones they stand beside.
JOBS=("ONCE=rtt-2p" "ONCE=rtt-2p-task" "ONCE=rtt-2p-parked" "ONCE=rtt-2p-bare" "ONCE=oneway-2p" "ONCE=oneway-2p-bare")
if [[ "$PEERS" != 0 ]]; then
  JOBS+=("grpc-rtt tonic-2p" "remote-rtt coerce-remote" "remote-rtt ractor-cluster" "grpc-oneway tonic-2p")
fi

run_job() {
  case "$1" in
    ONCE=*) env "$1" "$OURS" --bench 2>/dev/null ;;
    *) # shellcheck disable=SC2086
      timeout 120 "$PEERS_BIN" $1 2>/dev/null | sed -e 's/^grpc-rtt/remote-rtt/' -e 's/^grpc-oneway/remote-tell/' ;;
  esac
}

RAW="$(mktemp)"
trap 'rm -f "$RAW"' EXIT
echo "# $(date -u +%FT%TZ) loadavg $(cut -d' ' -f1-3 /proc/loadavg) rounds=$ROUNDS scale=${PEERS_SCALE:-1}"
n=${#JOBS[@]}
for ((r = 0; r < ROUNDS; r++)); do
  for ((i = 0; i < n; i++)); do
    job="${JOBS[$(((i + r) % n))]}"
    run_job "$job" | sed "s/^/$r /" >>"$RAW" || echo "round $r: $job failed" >&2
  done
  echo "round $((r + 1))/$ROUNDS done (load $(cut -d' ' -f1 /proc/loadavg))" >&2
done
echo "# loadavg at end $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$RAW" <<'PY'
import statistics, sys
v = {}
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) == 5:
        v.setdefault((p[1], p[2]), {})[p[0]] = float(p[3])
def med(xs):
    return statistics.median(xs) if xs else float("nan")
print("| figure | system | median | min | max | runs |")
print("|---|---|---:|---:|---:|---:|")
for (w, s), runs in sorted(v.items()):
    xs = list(runs.values())
    print(f"| {w} | {s} | {med(xs):.1f} | {min(xs):.1f} | {max(xs):.1f} | {len(xs)} |")
def ratios(a, b, best_of=None):
    out = []
    for r, x in v.get(a, {}).items():
        ys = [v[k][r] for k in (best_of or [b]) if r in v.get(k, {})]
        if ys:
            out.append(x / (min(ys) if "p50" in a[0] or "p99" in a[0] else max(ys)))
    return out
print()
print("| ratio, per round | median | min | max | rounds |")
print("|---|---:|---:|---:|---:|")
peers = [("remote-rtt-p50", "coerce-remote"), ("remote-rtt-p50", "ractor-cluster")]
rows = [
    ("rtt p50 ours / bare tonic 2p (ours)", ("remote-rtt-p50", "protoactor"), ("remote-rtt-p50", "bare-tonic-2p"), None),
    ("rtt p50 ours / tonic-2p (peers)", ("remote-rtt-p50", "protoactor"), ("remote-rtt-p50", "tonic-2p"), None),
    ("rtt p50 ours / best peer", ("remote-rtt-p50", "protoactor"), None, peers),
    ("rtt p99 ours / bare tonic 2p (ours)", ("remote-rtt-p99", "protoactor"), ("remote-rtt-p99", "bare-tonic-2p"), None),
    # The same loop in a spawned task (the peers' clients await in block_on).
    ("rtt p50 ours from a task / ours from block_on", ("remote-rtt-p50", "protoactor-task"), ("remote-rtt-p50", "protoactor"), None),
    ("rtt p50 ours, spin off / spin on", ("remote-rtt-p50", "protoactor-parked"), ("remote-rtt-p50", "protoactor"), None),
    ("rtt p50 ours, spin off / best peer", ("remote-rtt-p50", "protoactor-parked"), None, peers),
    ("one-way ours / bare tonic 2p (ours)", ("remote-tell", "protoactor"), ("remote-tell", "bare-tonic-2p"), None),
    ("one-way ours / tonic-2p (peers)", ("remote-tell", "protoactor"), ("remote-tell", "tonic-2p"), None),
]
for name, a, b, best in rows:
    xs = ratios(a, b, best)
    if xs:
        print(f"| {name} | {med(xs):.2f} | {min(xs):.2f} | {max(xs):.2f} | {len(xs)} |")
PY
