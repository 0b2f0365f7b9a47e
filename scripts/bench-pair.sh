#!/usr/bin/env bash
# bench-pair.sh: load a Keyraft node and floorsrv (the floor of a Go net/http
# KES server, ../shared/bench/floorsrv) at the same time with two identical
# `keyraft bench` processes, for several rounds, and print each server's
# requests/s and server CPU per request, and their ratio. See
# docs/benchmark.md.
#
# Environment (defaults in brackets):
#   ROUNDS [3]  DURATION [10s]  CONCURRENCY [16]  OP [mixed]  KEYS [1]
#   WARMUP [1s]       bench --warmup
#   EXTRA []          more bench flags for both, e.g. "--http1" or "--rate 2000"
#   METRICS [1]       add --metrics to Keyraft's bench (floorsrv has no metrics)
#   CACHE_ANY [5m] CACHE_UNUSED [30s]   Keyraft's cache.expiry
#   FLOORSRV_DIR [<repo>/../shared/bench/floorsrv]
#   OUT []            keep the JSON results in this directory
#   VERSIONS [1]      rotate Keyraft's bench keys to this many versions first
#                     (key versions cost nothing per request: compare the
#                     ratio with VERSIONS=1 and VERSIONS=100)
#   PPROF []          serve Keyraft's pprof on this loopback address, e.g.
#                     127.0.0.1:6060, to profile it under the load
#   START_MARGIN []   seconds from launch to the start of the load (default
#                     2 + KEYS/1000, the time to seal one data key per key)
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-16}
OP=${OP:-mixed}
KEYS=${KEYS:-1}
WARMUP=${WARMUP:-1s}
EXTRA=${EXTRA:-}
METRICS=${METRICS:-1}
CACHE_ANY=${CACHE_ANY:-5m}
CACHE_UNUSED=${CACHE_UNUSED:-30s}
VERSIONS=${VERSIONS:-1}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FLOORSRV_DIR=${FLOORSRV_DIR:-$REPO/../shared/bench/floorsrv}
START_MARGIN=${START_MARGIN:-$((2 + KEYS / 1000))}

BENCH_NAME=bench-pair
# shellcheck source=scripts/lib-bench.sh
. "$REPO/scripts/lib-bench.sh"

# wait_ready polls an HTTPS URL with the client certificate until it answers
# 2xx, for up to 30 s, failing early when the server process has exited.
wait_ready() {
	local url=$1 pid=$2 name=$3
	WAIT_SECONDS=30 wait_for "$name ready" "$pid" "$TMP/$name.log" \
		curl -fsk --max-time 2 --cert "$TMP/client.cert" --key "$TMP/client.key" "$url"
}

log "building keyraft and floorsrv in $TMP"
(cd "$REPO" && go build -o "$TMP/keyraft" ./cmd/keyraft)
(cd "$FLOORSRV_DIR" && go build -o "$TMP/floorsrv" .)
KR=$TMP/keyraft

# One server certificate for both servers, one client certificate that both
# accept as admin.
"$KR" identity new srv --key "$TMP/srv.key" --cert "$TMP/srv.cert" --ip 127.0.0.1 --json >/dev/null
CLIENT_ID=$("$KR" identity new bench-client --key "$TMP/client.key" --cert "$TMP/client.cert" --json | jq -r .identity)

KR_PORT=$(free_port)
RAFT_PORT=$(free_port)
FL_PORT=$(free_port)

# Keyraft from a config file rather than --dev: --dev writes an audit record
# per request to stdout, which floorsrv does not do.
cat >"$TMP/keyraft.yaml" <<EOF
address: 127.0.0.1:$KR_PORT
admin:
  identity: $CLIENT_ID
tls:
  key: $TMP/srv.key
  cert: $TMP/srv.cert
cache:
  expiry:
    any: $CACHE_ANY
    unused: $CACHE_UNUSED
log:
  error: on
  audit: off
keystore:
  fs:
    path: $TMP/keystore
cluster:
  node_id: bench
  data_dir: $TMP/data
  raft_address: 127.0.0.1:$RAFT_PORT
EOF

PPROF_FLAG=()
if [[ -n ${PPROF:-} ]]; then PPROF_FLAG=(--pprof "$PPROF"); fi
"$KR" server --config "$TMP/keyraft.yaml" "${PPROF_FLAG[@]}" >"$TMP/keyraft.log" 2>&1 &
KR_PID=$!
PIDS+=("$KR_PID")
"$TMP/floorsrv" -addr "127.0.0.1:$FL_PORT" -cert "$TMP/srv.cert" -key "$TMP/srv.key" -admin "$CLIENT_ID" >"$TMP/floorsrv.log" 2>&1 &
FL_PID=$!
PIDS+=("$FL_PID")
wait_ready "https://127.0.0.1:$KR_PORT/v1/ready" "$KR_PID" keyraft
wait_ready "https://127.0.0.1:$FL_PORT/version" "$FL_PID" floorsrv
log "keyraft pid $KR_PID on :$KR_PORT, floorsrv pid $FL_PID on :$FL_PORT"

OUT=${OUT:-$TMP/results}
mkdir -p "$OUT"
# shellcheck disable=SC2206 # EXTRA is meant to be split into flags
BENCH=(bench --duration "$DURATION" --concurrency "$CONCURRENCY" --op "$OP" --keys "$KEYS"
	--warmup "$WARMUP" --json -k --cert "$TMP/client.cert" --key "$TMP/client.key" $EXTRA)
KR_ONLY=()
if [[ $METRICS == 1 ]]; then KR_ONLY=(--metrics); fi

# Create the keys once, outside the rounds, on both servers.
if ((KEYS > 1)); then
	log "creating $KEYS keys on both servers"
	for ep in "$KR_PORT" "$FL_PORT"; do
		"$KR" bench --duration 1ms --concurrency 1 --op generate --keys "$KEYS" --json -k \
			--cert "$TMP/client.cert" --key "$TMP/client.key" --server "https://127.0.0.1:$ep" >/dev/null
	done
fi

if ((VERSIONS > 1)); then
	names=(keyraft-bench)
	((KEYS == 1)) || mapfile -t names < <(seq 0 $((KEYS - 1)) | sed 's/^/keyraft-bench-/')
	log "rotating ${#names[@]} Keyraft key(s) to $VERSIONS versions"
	for name in "${names[@]}"; do
		"$KR" key create "$name" -k --cert "$TMP/client.cert" --key "$TMP/client.key" \
			--server "https://127.0.0.1:$KR_PORT" 2>/dev/null || true
		for ((v = 2; v <= VERSIONS; v++)); do
			"$KR" key rotate "$name" -k --cert "$TMP/client.cert" --key "$TMP/client.key" \
				--server "https://127.0.0.1:$KR_PORT" >/dev/null
		done
	done
fi

BENCH_A=("${BENCH[@]}" "${KR_ONLY[@]}" --server "https://127.0.0.1:$KR_PORT" --server-pids "$KR_PID")
BENCH_B=("${BENCH[@]}" --server "https://127.0.0.1:$FL_PORT" --server-pids "$FL_PID")
log "$ROUNDS round(s): ${BENCH[*]:1}"
for ((r = 1; r <= ROUNDS; r++)); do
	bench_pair "$r" keyraft floorsrv
done

# The table: one row per round, then the medians (for the ratios, the median
# of the per-round ratios: both servers of a round shared the machine's state).
python3 - "$OUT" "$ROUNDS" <<'EOF'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rows = []
for r in range(1, rounds + 1):
    k = json.load(open(f"{out}/round{r}-keyraft.json"))
    f = json.load(open(f"{out}/round{r}-floorsrv.json"))
    kc, fc = k.get("cpu_us_per_request"), f.get("cpu_us_per_request")
    rows.append([str(r), k["requests_per_second"], f["requests_per_second"],
                 k["requests_per_second"] / f["requests_per_second"] if f["requests_per_second"] else float("nan"),
                 kc, fc, kc / fc if kc and fc else float("nan"), k["p99_ms"], f["p99_ms"]]
                + ([k["dropped"], f["dropped"]] if k["rate"] else []))
med = ["median"] + [statistics.median(c for c in col if c is not None) for col in list(zip(*rows))[1:]]
k0 = json.load(open(f"{out}/round1-keyraft.json"))
print(f"op={k0['op']} keys={k0['keys']} dist={k0['dist']} proto={k0['proto']} concurrency={k0['concurrency']} "
      f"rate={k0['rate'] or 'closed loop'} window={k0['seconds']:.1f}s warmup={k0['warmup_seconds']:g}s")
hdr = ["round", "keyraft req/s", "floorsrv req/s", "ratio", "keyraft CPU µs/req", "floorsrv CPU µs/req", "ratio",
       "keyraft p99 ms", "floorsrv p99 ms"] + (["keyraft dropped", "floorsrv dropped"] if k0["rate"] else [])
fmt = lambda v: (v if isinstance(v, str) else "-" if v is None else str(v) if isinstance(v, int)
                else f"{v:.0f}" if v >= 100 else f"{v:.2f}")
table = [hdr] + [[fmt(v) for v in row] for row in rows + [med]]
widths = [max(len(row[i]) for row in table) for i in range(len(hdr))]
for row in table:
    print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
m = k0.get("metrics")
if m:
    print("keyraft counters, round 1 (per request):",
          ", ".join(f"{n}={'absent' if d is None else format(d['per_request'], '.3g')}" for n, d in sorted(m.items())))
EOF
if [[ $OUT != "$TMP/results" ]]; then log "JSON results in $OUT"; fi
