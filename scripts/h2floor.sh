#!/usr/bin/env bash
# h2floor.sh: what Go's HTTP/2 server costs per request, measured. Builds
# two servers with floorsrv's handlers (../shared/bench/floorsrv: the
# crypto, JSON and identity check of a KES server, nothing else): floorsrv
# itself, on net/http's HTTP/2 server, and h2floor, the same handlers on
# the one-goroutine-per-connection HTTP/2 loop in scripts/h2floor/h2.go.in.
# Both are loaded at once by two `keyraft bench` processes (as
# scripts/bench-pair.sh does) and the script prints each round's CPU per
# request, p99 and requests/s, and the ratio h2floor ÷ floorsrv. It is a
# measurement of the transport's share, not a server: see h2.go.in for
# what the loop leaves out. See docs/benchmark.md.
#
# Environment (defaults in brackets):
#   ROUNDS [3]  DURATION [10s]  CONCURRENCY [16]  OP [generate]  WARMUP [1s]
#   EXTRA []          more bench flags for both, e.g. "--rate 1000"
#   FLOORSRV_DIR [../shared/bench/floorsrv]
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-16}
OP=${OP:-generate}
WARMUP=${WARMUP:-1s}
EXTRA=${EXTRA:-}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FLOORSRV_DIR=${FLOORSRV_DIR:-$REPO/../shared/bench/floorsrv}

BENCH_NAME=h2floor
# shellcheck source=scripts/lib-bench.sh
. "$REPO/scripts/lib-bench.sh"

log "building keyraft (for its bench), floorsrv and h2floor in $TMP"
(cd "$REPO" && go build -o "$TMP/keyraft" ./cmd/keyraft)
(cd "$FLOORSRV_DIR" && go build -o "$TMP/floorsrv" .)
# h2floor: floorsrv's main.go with its net/http server replaced by a loop
# that accepts TLS connections and hands each to serveConn (h2.go.in).
mkdir -p "$TMP/h2floor"
python3 - "$FLOORSRV_DIR/main.go" "$TMP/h2floor/main.go" <<'PY'
import sys
src = open(sys.argv[1]).read()
start = src.index("\ttconf := &tls.Config{")
end = src.index("\n}", start)
serve = '''	_ = h1
	cert, err := tls.LoadX509KeyPair(*certF, *keyF)
	if err != nil {
		log.Fatal(err)
	}
	tconf := &tls.Config{MinVersion: tls.VersionTLS12, ClientAuth: tls.RequireAnyClientCert,
		Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}}
	ln, err := tls.Listen("tcp", *addr, tconf)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("h2floor listening on https://%s", *addr)
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go serveConn(c.(*tls.Conn), mux)
	}'''
out = src[:start] + serve + src[end:]
out = out.replace('\t"time"\n', '') if out.count("time.") == 0 else out
open(sys.argv[2], "w").write(out)
PY
cp "$REPO/scripts/h2floor/h2.go.in" "$TMP/h2floor/h2.go"
xnet=$(cd "$REPO" && go list -m -f '{{.Version}}' golang.org/x/net)
printf 'module h2floor\n\ngo 1.26\n\nrequire golang.org/x/net %s\n' "$xnet" >"$TMP/h2floor/go.mod"
(cd "$TMP/h2floor" && GOFLAGS=-mod=mod go mod tidy && go build -o "$TMP/h2floor-bin" .)
KR=$TMP/keyraft

"$KR" identity new srv --key "$TMP/srv.key" --cert "$TMP/srv.cert" --ip 127.0.0.1 --json >/dev/null
CLIENT_ID=$("$KR" identity new bench-client --key "$TMP/client.key" --cert "$TMP/client.cert" --json | jq -r .identity)
AUTH=(-k --cert "$TMP/client.cert" --key "$TMP/client.key")

declare -A PID URL
for s in floorsrv h2floor; do
	port=$(free_port)
	bin=$TMP/floorsrv
	[[ $s == h2floor ]] && bin=$TMP/h2floor-bin
	"$bin" -addr "127.0.0.1:$port" -cert "$TMP/srv.cert" -key "$TMP/srv.key" -admin "$CLIENT_ID" >"$TMP/$s.log" 2>&1 &
	PID[$s]=$!
	PIDS+=("$!")
	URL[$s]=https://127.0.0.1:$port
done
for s in floorsrv h2floor; do
	# The bench's key (and, for decrypt, its sealed data key) on each.
	WAIT_SECONDS=30 wait_for "$s ready" "${PID[$s]}" "$TMP/$s.log" \
		"$KR" bench --duration 1ms --concurrency 1 --op "$OP" --json "${AUTH[@]}" --server "${URL[$s]}"
done

OUT=$TMP/results
mkdir -p "$OUT"
# shellcheck disable=SC2206 # EXTRA is meant to be split into flags
BENCH=(bench --duration "$DURATION" --concurrency "$CONCURRENCY" --op "$OP" --warmup "$WARMUP" --json "${AUTH[@]}" $EXTRA)
BENCH_A=("${BENCH[@]}" --server "${URL[floorsrv]}" --server-pids "${PID[floorsrv]}")
BENCH_B=("${BENCH[@]}" --server "${URL[h2floor]}" --server-pids "${PID[h2floor]}")
log "$ROUNDS round(s): ${BENCH[*]:1}"
for ((r = 1; r <= ROUNDS; r++)); do
	bench_pair "$r" floorsrv h2floor
done

pair_table floorsrv h2floor "h2floor ÷ floorsrv"
