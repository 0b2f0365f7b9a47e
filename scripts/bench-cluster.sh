#!/usr/bin/env bash
# bench-cluster.sh: load a one-node Keyraft and a three-node Keyraft cluster
# at the same time with two identical `keyraft bench` processes, for several
# rounds, and print each side's requests/s, server CPU per request (summed
# over the cluster's three processes) and p99, and the ratios cluster ÷
# single node. The target for reads is a CPU ratio within 1.05: no cluster
# tax on the read path. With CHURN=R both bench processes also create and
# delete keys at R operations/s beside the load (`keyraft bench --churn`), to
# compare p99 with and without writes. See docs/benchmark.md.
#
# Environment (defaults in brackets):
#   ROUNDS [3]  DURATION [10s]  CONCURRENCY [16]  OP [mixed]  KEYS [1]
#   WARMUP [1s]       bench --warmup
#   EXTRA []          more bench flags for both, e.g. "--http1" or "--rate 2000"
#   CHURN [0]         bench --churn for both (0: no writes beside the load)
#   METRICS [1]       add --metrics to both (Raft applies etc. per request)
#   SINGLE_EXTRA []   bench flags for the single node only (later flags win),
#                     e.g. "--concurrency 5" to load it as much as one
#                     cluster node is loaded
#   BASELINE [single] what the cluster is compared with: "single", one
#                     node; or "standalone", three single-node servers
#                     that share nothing, behind the same round-robin
#                     load. The standalone baseline splits the load over
#                     three processes as the cluster does, so its ratio is
#                     the cluster's own cost (Raft, membership, forwarding)
#                     without the cost of three processes sharing a load
#                     (see scripts/bench-floor3.sh). It needs OP=generate:
#                     the three hold different keys.
#   SINGLE_ENDPOINTS [1]  list the single node this many times, so that its
#                     bench spreads the workers over as many connections as
#                     the cluster's (3 gives both sides the same connection
#                     layout; HTTP/2 costs more per request when fewer
#                     requests share a connection)
#   NODE_GOMAXPROCS []  GOMAXPROCS of all four server processes
#   IDLE_SECONDS [5]  length of the idle CPU measurement before the rounds
#   NODE_PPROF []     1: start every server with --pprof on a free loopback
#                     port and log the profile URLs (to profile the cluster
#                     under load or idle)
#   OUT []            keep the JSON results in this directory
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
CHURN=${CHURN:-0}
METRICS=${METRICS:-1}
BASELINE=${BASELINE:-single}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
START_MARGIN=${START_MARGIN:-$((2 + KEYS / 1000))}

BENCH_NAME=bench-cluster
# shellcheck source=scripts/lib-bench.sh
. "$REPO/scripts/lib-bench.sh"

case $BASELINE in
single) BASE=(single) ;;
standalone)
	[[ $OP == generate ]] || die "BASELINE=standalone needs OP=generate (three standalone servers hold different keys)"
	BASE=(single1 single2 single3)
	;;
*) die "BASELINE must be single or standalone, not $BASELINE" ;;
esac

# kcurl <url>: GET with the admin client certificate.
kcurl() { curl -fsk --max-time 2 --cert "$TMP/client.cert" --key "$TMP/client.key" "$1"; }

log "building keyraft in $TMP"
(cd "$REPO" && go build -o "$TMP/keyraft" ./cmd/keyraft)
KR=$TMP/keyraft

# No client settings from the caller's environment.
unset KES_SERVER KES_API_KEY KES_ENCLAVE KES_CLIENT_CERT KES_CLIENT_KEY MINIO_KES_SERVER MINIO_KES_API_KEY \
	MINIO_KMS_KES_ENDPOINT MINIO_KMS_KES_API_KEY MINIO_KMS_KES_CERT_FILE MINIO_KMS_KES_KEY_FILE \
	MINIO_KMS_KES_ENCLAVE MINIO_KMS_KES_CAPATH MINIO_KES_CERT_FILE MINIO_KES_KEY_FILE \
	MINIO_KES_CLIENT_CERT MINIO_KES_CLIENT_KEY 2>/dev/null || true

# One server certificate per process (a cluster member is authorized by its
# certificate's identity), one admin client certificate for both benches.
CLIENT_ID=$("$KR" identity new bench-client --key "$TMP/client.key" --cert "$TMP/client.cert" --json | jq -r .identity)
declare -A ID API RAFT URL
for s in "${BASE[@]}" node1 node2 node3; do
	"$KR" identity new "$s" --key "$TMP/$s.key" --cert "$TMP/$s.cert" --ip 127.0.0.1 --json >/dev/null
	ID[$s]=$("$KR" identity of "$TMP/$s.cert")
	API[$s]=$(free_port)
	RAFT[$s]=$(free_port)
	URL[$s]=https://127.0.0.1:${API[$s]}
done

# write_config <name> <keystore dir> [<join URL>]: the same settings for
# every process: audit log off (an audit record per request is not what is
# measured), fs keystore, the cluster-nodes policy that lets node2 and node3
# join through node1. The cluster's nodes share one keystore directory, as
# a cluster must (the keystore is its durable root); the single node has its
# own (each standalone one too).
write_config() {
	local s=$1 keys=$2 join=${3:-}
	cat >"$TMP/$s.yaml" <<EOF
address: 127.0.0.1:${API[$s]}
admin:
  identity: $CLIENT_ID
tls:
  key: $TMP/$s.key
  cert: $TMP/$s.cert
log:
  error: on
  audit: off
policy:
  cluster-nodes:
    allow: [/v1/cluster/join]
    identities: [${ID[node2]}, ${ID[node3]}]
keystore:
  fs:
    path: $keys
cluster:
  node_id: $s
  data_dir: $TMP/data/$s
  raft_address: 127.0.0.1:${RAFT[$s]}
EOF
	if [[ -n $join ]]; then echo "  join: [$join]" >>"$TMP/$s.yaml"; fi
}
for s in "${BASE[@]}"; do write_config "$s" "$TMP/$s-keys"; done
write_config node1 "$TMP/cluster-keys"
write_config node2 "$TMP/cluster-keys" "${URL[node1]}"
write_config node3 "$TMP/cluster-keys" "${URL[node1]}"

declare -A PID
start() {
	local pprof=()
	if [[ -n ${NODE_PPROF:-} ]]; then pprof=(--pprof "127.0.0.1:$(free_port)"); fi
	GOMAXPROCS=${NODE_GOMAXPROCS:-} "$KR" server --config "$TMP/$1.yaml" "${pprof[@]}" >"$TMP/$1.log" 2>&1 </dev/null &
	PID[$1]=$!
	PIDS+=("$!")
}
ready() { kcurl "${URL[$1]}/v1/ready"; }
# cluster_formed: node1 reports three voters, a leader and no member errors.
cluster_formed() {
	local st
	st=$("$KR" cluster status --json -k --cert "$TMP/client.cert" --key "$TMP/client.key" --server "${URL[node1]}") || return 1
	[[ $(grep -o '"voter":true' <<<"$st" | wc -l) -eq 3 ]] && grep -q '"leader":"node[123]"' <<<"$st" && ! grep -q '"error"' <<<"$st"
}
# leader: the cluster's leader as node1 sees it.
leader() {
	"$KR" cluster status --json -k --cert "$TMP/client.cert" --key "$TMP/client.key" --server "${URL[node1]}" |
		grep -o '"leader":"[^"]*"' | head -n 1 | cut -d'"' -f4
}
# elections: leader elections won so far in the cluster, from its logs.
elections() { cat "$TMP"/node[123].log | grep -c 'entering leader state' || true; }

for s in "${BASE[@]}"; do start "$s"; done
start node1
for s in "${BASE[@]}"; do wait_for "$s ready" "${PID[$s]}" "$TMP/$s.log" ready "$s"; done
wait_for "node1 ready" "${PID[node1]}" "$TMP/node1.log" ready node1
start node2
start node3
wait_for "node2 ready" "${PID[node2]}" "$TMP/node2.log" ready node2
wait_for "node3 ready" "${PID[node3]}" "$TMP/node3.log" ready node3
wait_for "cluster formed" "${PID[node1]}" "$TMP/node1.log" cluster_formed
log "baseline ($BASELINE) pids $(for s in "${BASE[@]}"; do echo -n "${PID[$s]} "; done)on$(for s in "${BASE[@]}"; do echo -n " :${API[$s]}"; done); cluster pids ${PID[node1]} ${PID[node2]} ${PID[node3]}" \
	"on :${API[node1]} :${API[node2]} :${API[node3]}, leader $(leader)"

if [[ -n ${NODE_PPROF:-} ]]; then
	for s in "${BASE[@]}" node1 node2 node3; do
		log "$s profiles: $(grep -o 'http://127.0.0.1:[0-9]*/debug/pprof/' "$TMP/$s.log" | head -n 1)"
	done
fi

if [[ $BASELINE == single ]]; then
	SINGLE=${URL[single]}
	for ((i = 1; i < ${SINGLE_ENDPOINTS:-1}; i++)); do SINGLE+=",${URL[single]}"; done
	SINGLE_PIDS=${PID[single]}
else
	SINGLE=${URL[single1]},${URL[single2]},${URL[single3]}
	SINGLE_PIDS=${PID[single1]},${PID[single2]},${PID[single3]}
fi
CLUSTER=${URL[node1]},${URL[node2]},${URL[node3]}
CLUSTER_PIDS=${PID[node1]},${PID[node2]},${PID[node3]}

OUT=${OUT:-$TMP/results}
mkdir -p "$OUT"
# shellcheck disable=SC2206 # EXTRA is meant to be split into flags
BENCH=(bench --duration "$DURATION" --concurrency "$CONCURRENCY" --op "$OP" --keys "$KEYS"
	--warmup "$WARMUP" --json -k --cert "$TMP/client.cert" --key "$TMP/client.key" $EXTRA)
if [[ $METRICS == 1 ]]; then BENCH+=(--metrics); fi
if [[ $CHURN != 0 ]]; then BENCH+=(--churn "$CHURN"); fi

# Create the keys once, outside the rounds, on both sides (on every
# standalone server: a bench creates them on its first endpoint only).
if ((KEYS > 1)) || [[ $BASELINE == standalone ]]; then
	log "creating $KEYS key(s) on both sides"
	for ep in "${URL[single]:-}" "${URL[single1]:-}" "${URL[single2]:-}" "${URL[single3]:-}" "${URL[node1]}"; do
		[[ -n $ep ]] || continue
		"$KR" bench --duration 1ms --concurrency 1 --op generate --keys "$KEYS" --json -k \
			--cert "$TMP/client.cert" --key "$TMP/client.key" --server "$ep" >/dev/null
	done
fi

# cpu_ticks <pid,...>: utime+stime of the processes, in clock ticks.
cpu_ticks() {
	local t=0 p
	for p in ${1//,/ }; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
	echo "$t"
}
# The fixed cost of running: CPU per second of both sides with no load
# (Raft heartbeats, health checks and the other background loops).
IDLE_SECONDS=${IDLE_SECONDS:-5}
s0=$(cpu_ticks "$SINGLE_PIDS") c0=$(cpu_ticks "$CLUSTER_PIDS")
sleep "$IDLE_SECONDS" # measuring idle CPU over a fixed window, not waiting for an event
s1=$(cpu_ticks "$SINGLE_PIDS") c1=$(cpu_ticks "$CLUSTER_PIDS")
hz=$(getconf CLK_TCK)
log "idle CPU over ${IDLE_SECONDS}s: $BASELINE $(((s1 - s0) * 1000 / hz / IDLE_SECONDS)) ms/s," \
	"cluster (3 processes) $(((c1 - c0) * 1000 / hz / IDLE_SECONDS)) ms/s"

elections0=$(elections)
# shellcheck disable=SC2206 # SINGLE_EXTRA is meant to be split into flags
BENCH_A=("${BENCH[@]}" ${SINGLE_EXTRA:-} --server "$SINGLE" --server-pids "$SINGLE_PIDS")
BENCH_B=("${BENCH[@]}" --server "$CLUSTER" --server-pids "$CLUSTER_PIDS")
log "$ROUNDS round(s): ${BENCH[*]:1}"
for ((r = 1; r <= ROUNDS; r++)); do
	bench_pair "$r" single cluster
done
ELECTIONS=$(($(elections) - elections0))
((ELECTIONS == 0)) || log "$ELECTIONS leader election(s) in the cluster during the rounds"

# The table: one row per round, then the medians (for the ratios, the median
# of the per-round ratios: both sides of a round shared the machine's state).
python3 - "$OUT" "$ROUNDS" "$ELECTIONS" "$BASELINE" <<'EOF'
import json, statistics, sys
out, rounds, elections, base = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
nan = float("nan")
def ratio(a, b):
    return a / b if a is not None and b else nan
rows = []
for r in range(1, rounds + 1):
    s = json.load(open(f"{out}/round{r}-single.json"))
    c = json.load(open(f"{out}/round{r}-cluster.json"))
    sc, cc = s.get("cpu_us_per_request"), c.get("cpu_us_per_request")
    row = [str(r), s["requests_per_second"], c["requests_per_second"],
           ratio(c["requests_per_second"], s["requests_per_second"]),
           sc, cc, ratio(cc, sc), s["p99_ms"], c["p99_ms"], ratio(c["p99_ms"], s["p99_ms"])]
    if s["rate"]:
        row += [s["dropped"], c["dropped"]]
    if s.get("churn"):
        row += [s["churn"]["done_per_second"], c["churn"]["done_per_second"],
                s["churn"]["failed"] + c["churn"]["failed"] + s["churn"]["dropped"] + c["churn"]["dropped"],
                s["churn"]["p99_ms"], c["churn"]["p99_ms"]]
    rows.append(row)
med = ["median"] + [statistics.median(v for v in col if v is not None) for col in list(zip(*rows))[1:]]
s0 = json.load(open(f"{out}/round1-single.json"))
churn = s0.get("churn")
print(f"op={s0['op']} keys={s0['keys']} dist={s0['dist']} proto={s0['proto']} concurrency={s0['concurrency']} "
      f"rate={s0['rate'] or 'closed loop'} window={s0['seconds']:.1f}s warmup={s0['warmup_seconds']:g}s "
      f"churn={churn['rate'] if churn else 0}/s; cluster: 3 nodes, round-robin, CPU summed over the 3 processes"
      + ("; standalone: 3 single-node servers, the same" if base == "standalone" else ""))
hdr = ["round", f"{base} req/s", "cluster req/s", "ratio", f"{base} CPU µs/req", "cluster CPU µs/req", "ratio",
       f"{base} p99 ms", "cluster p99 ms", "ratio"]
if s0["rate"]:
    hdr += [f"{base} dropped", "cluster dropped"]
if churn:
    hdr += [f"{base} churn/s", "cluster churn/s", "churn failed+dropped", f"{base} write p99", "cluster write p99"]
fmt = lambda v: (v if isinstance(v, str) else "-" if v is None else str(v) if isinstance(v, int)
                 else f"{v:.0f}" if v >= 100 else f"{v:.2f}")
table = [hdr] + [[fmt(v) for v in row] for row in rows + [med]]
widths = [max(len(row[i]) for row in table) for i in range(len(hdr))]
for row in table:
    print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
print(f"CPU per request, cluster ÷ {base}: median {med[6]:.3f} (target ≤ 1.05); "
      f"leader elections during the rounds: {elections}")
for side in ("single", "cluster"):
    m = json.load(open(f"{out}/round1-{side}.json")).get("metrics")
    if m:
        print(f"{base if side == 'single' else side} counters, round 1 (per request):",
              ", ".join(f"{n}={'absent' if d is None else format(d['per_request'], '.3g')}" for n, d in sorted(m.items())))
EOF
if [[ $OUT != "$TMP/results" ]]; then log "JSON results in $OUT"; fi
