#!/usr/bin/env bash
# Runs our local benchmark workloads and the same workloads of actix, ractor
# and kameo (../shared/bench-peers) alternately, ROUNDS times (default 7), and
# prints per workload the median of each system and the median of the
# per-round ratios ours / fastest peer. Alternating cancels most of the drift
# of a shared machine, which moves single runs by 20% or more within minutes.
# For tell and ask it also runs the bare tokio channel floor of our bench and
# prints the median per-round ratio floor / ours.
#
#   bash scripts/compare-peers.sh                  # tell, ask, spawn
#   WORKLOADS="spawn" ROUNDS=11 bash scripts/compare-peers.sh
#
# Builds the peers once into /tmp/bench-peers (about 10 minutes cold).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-7}"
WORKLOADS="${WORKLOADS:-tell-throughput ask-latency spawn}"
PEERS_SRC="${PEERS_SRC:-../shared/bench-peers}"
PEERS_DIR="${PEERS_DIR:-/tmp/bench-peers}"
PEERS="$PEERS_DIR/target/local-only/release/peers"

if [[ ! -x "$PEERS" ]]; then
  [[ -d "$PEERS_DIR" ]] || cp -r "$PEERS_SRC" "$PEERS_DIR"
  (cd "$PEERS_DIR" && cargo build --release --quiet --no-default-features --target-dir target/local-only)
fi
OURS="$(cargo bench -p protoactor-actor --bench local --no-run 2>&1 | sed -n 's/.*(\(.*local-[0-9a-f]*\)).*/\1/p' | tail -1)"
[[ -x "$OURS" ]] || { echo "could not build the local bench" >&2; exit 1; }

RAW="$(mktemp)"
trap 'rm -f "$RAW"' EXIT
for round in $(seq 1 "$ROUNDS"); do
  for w in $WORKLOADS; do
    # The peers binary names the spawn workload "spawn"; ours prints the same names.
    ONCE="$w" "$OURS" --bench 2>/dev/null | sed "s/^/$round /" >> "$RAW"
    case "$w" in
      tell-throughput) ONCE=tell-raw "$OURS" --bench 2>/dev/null | sed "s/^/$round /" >> "$RAW" ;;
      ask-latency) ONCE=ask-raw "$OURS" --bench 2>/dev/null | sed "s/^/$round /" >> "$RAW" ;;
    esac
    peer_workload="${w%-throughput}"; peer_workload="${peer_workload%-latency}"
    for p in actix ractor kameo; do
      "$PEERS" "$peer_workload" "$p" 2>/dev/null | grep -E "^$w " | sed "s/^/$round /" >> "$RAW" || true
    done
  done
  echo "round $round/$ROUNDS done" >&2
done

# RAW lines: round workload system value unit
awk -v workloads="$WORKLOADS" '
function median(arr, n,   i, j, t) {
  for (i = 2; i <= n; i++) { t = arr[i]; for (j = i - 1; j >= 1 && arr[j] > t; j--) arr[j + 1] = arr[j]; arr[j + 1] = t }
  return (n % 2) ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
}
{ v[$2, $3, $1] = $4; unit[$2] = $5; sys[$2, $3] = 1; rounds[$1] = 1 }
END {
  split(workloads, ws, " ")
  printf "| workload | system | median | unit |\n|---|---|---|---|\n"
  for (wi = 1; wi in ws; wi++) {
    w = ws[wi]
    for (s in sys) {
      split(s, k, SUBSEP); if (k[1] != w) continue
      n = 0; for (r in rounds) if ((w, k[2], r) in v) vals[++n] = v[w, k[2], r]
      if (n) printf "| %s | %s | %.0f | %s |\n", w, k[2], median(vals, n), unit[w]
      delete vals
    }
    n = 0
    for (r in rounds) {
      if (!((w, "protoactor", r) in v)) continue
      best = 0; for (s in sys) { split(s, k, SUBSEP); if (k[1] == w && k[2] != "protoactor" && k[2] != "tokio-mpsc" && (w, k[2], r) in v && v[w, k[2], r] > best) best = v[w, k[2], r] }
      if (best > 0) ratios[++n] = v[w, "protoactor", r] / best
    }
    if (n) printf "| %s | ours / fastest peer, median of %d paired rounds | %.2f | ratio |\n", w, n, median(ratios, n)
    delete ratios
    n = 0
    for (r in rounds) if ((w, "protoactor", r) in v && (w, "tokio-mpsc", r) in v) ratios[++n] = v[w, "tokio-mpsc", r] / v[w, "protoactor", r]
    if (n) printf "| %s | tokio floor / ours, median of %d paired rounds | %.2f | ratio |\n", w, n, median(ratios, n)
    delete ratios
  }
}' "$RAW"
