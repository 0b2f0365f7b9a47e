#!/usr/bin/env bash
# bench-floor3.sh: the transport's own "cluster tax". Loads one floorsrv
# (../shared/bench/floorsrv: Go's net/http with the same crypto, nothing
# else) and three floorsrv processes behind one round-robin `keyraft bench`
# at the same time, for several rounds, and prints the CPU per request of
# each side (the three summed) and the ratio three ÷ one. floorsrv has no
# cluster, so the ratio is what three processes sharing a load cost over one
# process carrying it all, before any Raft: the baseline for
# scripts/bench-cluster.sh at the same EXTRA. See docs/benchmark.md.
#
# OP is generate: the three floorsrv processes hold different key material,
# so a ciphertext made by one does not decrypt on another.
#
# Environment (defaults in brackets):
#   ROUNDS [3]  DURATION [10s]  CONCURRENCY [16]  WARMUP [1s]
#   EXTRA [--rate 3000]  more bench flags for both sides ("" for closed loop)
#   NODE_GOMAXPROCS []   GOMAXPROCS of the four floorsrv processes
#   FLOORSRV_DIR [../shared/bench/floorsrv]
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-16}
WARMUP=${WARMUP:-1s}
EXTRA=${EXTRA---rate 3000}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FLOORSRV_DIR=${FLOORSRV_DIR:-$REPO/../shared/bench/floorsrv}

BENCH_NAME=bench-floor3
# shellcheck source=scripts/lib-bench.sh
. "$REPO/scripts/lib-bench.sh"

log "building keyraft (for its bench) and floorsrv in $TMP"
(cd "$REPO" && go build -o "$TMP/keyraft" ./cmd/keyraft)
(cd "$FLOORSRV_DIR" && go build -o "$TMP/floorsrv" .)
KR=$TMP/keyraft

"$KR" identity new srv --key "$TMP/srv.key" --cert "$TMP/srv.cert" --ip 127.0.0.1 --json >/dev/null
CLIENT_ID=$("$KR" identity new bench-client --key "$TMP/client.key" --cert "$TMP/client.cert" --json | jq -r .identity)
AUTH=(-k --cert "$TMP/client.cert" --key "$TMP/client.key")

declare -a PID URL
for i in 0 1 2 3; do
	port=$(free_port)
	GOMAXPROCS=${NODE_GOMAXPROCS:-} "$TMP/floorsrv" -addr "127.0.0.1:$port" -cert "$TMP/srv.cert" -key "$TMP/srv.key" \
		-admin "$CLIENT_ID" >"$TMP/floorsrv$i.log" 2>&1 &
	PID[i]=$!
	PIDS+=("$!")
	URL[i]=https://127.0.0.1:$port
done
for i in 0 1 2 3; do
	WAIT_SECONDS=30 wait_for "floorsrv$i ready" "${PID[i]}" "$TMP/floorsrv$i.log" \
		curl -fsk --max-time 2 --cert "$TMP/client.cert" --key "$TMP/client.key" "${URL[i]}/version"
	# The bench's key, on every process (a bench creates it on its first
	# endpoint only).
	"$KR" bench --duration 1ms --concurrency 1 --op generate --json "${AUTH[@]}" --server "${URL[i]}" >/dev/null
done

OUT=$TMP/results
mkdir -p "$OUT"
# shellcheck disable=SC2206 # EXTRA is meant to be split into flags
BENCH=(bench --duration "$DURATION" --concurrency "$CONCURRENCY" --op generate --warmup "$WARMUP" --json "${AUTH[@]}" $EXTRA)
BENCH_A=("${BENCH[@]}" --server "${URL[0]}" --server-pids "${PID[0]}")
BENCH_B=("${BENCH[@]}" --server "${URL[1]},${URL[2]},${URL[3]}" --server-pids "${PID[1]},${PID[2]},${PID[3]}")
log "$ROUNDS round(s): ${BENCH[*]:1}"
for ((r = 1; r <= ROUNDS; r++)); do
	bench_pair "$r" one three
done

pair_table one three "three floorsrv ÷ one"
