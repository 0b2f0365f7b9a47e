#!/usr/bin/env bash
# scale.sh: a three-node Keyraft cluster holding many keys, measured.
#
# Starts three nodes on 127.0.0.1 (shared fs keystore, node 1 bootstraps,
# nodes 2 and 3 join through it, audit logging off), loads N keys through
# Raft with `keyraft bench --op generate` (one create, so one Raft apply, per
# key), then prints:
#   - RSS (VmRSS from /proc/<pid>/status) per node: empty, after loading,
#     after a decrypt bench over all keys, after the restarts; RSS growth per
#     key, split into RssAnon and RssFile (the mmapped bbolt files), and the
#     Go heap's growth per key;
#   - fsm.db, raft.db, snapshots and the whole data_dir per node, fsm.db
#     bytes per key; the keystore directory; `keyraft cluster snapshot save`
#     size and time;
#   - how long loading took (keys/s);
#   - a 10 s `keyraft bench --op decrypt` over all N keys and all nodes:
#     requests/s, p99, and the change of Raft applies and keystore get calls
#     over the window (both should be 0);
#   - restart-to-serving of a follower, then of the leader: SIGTERM by PID,
#     start again, time until /v1/ready answers 200 on that node and until a
#     decrypt of a ciphertext made before the stop succeeds on that node (for
#     the leader also the time until another node is leader).
#
# Run from anywhere: bash scripts/scale.sh   (on 2 CPUs N=10000 took 2-3 min,
# N=100000 13 min, of which loading 10 min at ~170 keys/s)
# Needs Go, curl and jq. Builds keyraft once into the temporary directory;
# every process it starts is stopped by PID at exit.
#
# Environment (defaults in brackets):
#   N [100000]        keys to load
#   DECRYPT_DURATION [10s]  the decrypt bench's window
#   SETTLE [5]        seconds to wait before reading RSS after a phase
#   KEEP []           non-empty: keep the temporary directory (logs, data)
#   ROTATE []         non-empty: also rotate the seal key under load (below)
#   ROTATE_DURATION [60s]  that phase's decrypt bench window
#
# With ROTATE set, after the decrypt bench a second decrypt bench over all
# keys and all nodes (--failover: every worker fails over between the
# nodes, as MinIO does) runs while `keyraft cluster rotate-seal` re-seals every
# key record; a follower is stopped (SIGTERM) as soon as the rotation has
# begun and started again. It prints how long the rotation took and the
# bench's errors, and fails unless they are 0 and every node ends with the
# new seal key.
set -euo pipefail

N=${N:-100000}
DECRYPT_DURATION=${DECRYPT_DURATION:-10s}
SETTLE=${SETTLE:-5}
KEEP=${KEEP:-}
ROTATE=${ROTATE:-}
ROTATE_DURATION=${ROTATE_DURATION:-60s}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
for tool in go curl jq; do
	command -v "$tool" >/dev/null || { echo "scale: $tool is required" >&2; exit 1; }
done
if ((N < 2)); then
	echo "scale: N must be at least 2" >&2
	exit 1
fi

W=$(mktemp -d "${TMPDIR:-/tmp}/keyraft-scale.XXXXXX")
declare -A PID=() # node number -> server PID
EXTRA_PIDS=()     # bench processes

# cleanup (EXIT trap): stop every process still running, by PID.
cleanup() {
	local rc=$? p
	set +e
	for p in "${PID[@]}" "${EXTRA_PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${PID[@]}" "${EXTRA_PIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
	if ((rc != 0)); then
		for n in 1 2 3; do
			[ -f "$W/node$n.log" ] || continue
			echo "---- last lines of node$n.log" >&2
			tail -n 20 "$W/node$n.log" >&2
		done
	fi
	if [ -n "$KEEP" ]; then
		echo "scale: kept $W"
	else
		rm -rf "$W"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'echo "scale: interrupted" >&2; exit 130' INT
trap 'echo "scale: terminated" >&2; exit 143' TERM

T_START=$SECONDS
log() { printf '[%5ds] %s\n' $((SECONDS - T_START)) "$*"; }
die() { echo "scale: $*" >&2; exit 1; }

# now_ms: wall clock in milliseconds.
now_ms() { local us=${EPOCHREALTIME/[.,]/}; echo $((us / 1000)); }
# secs <ms>: milliseconds as seconds with two decimals.
secs() { printf '%d.%02d' $(($1 / 1000)) $((($1 % 1000) / 10)); }

# free_port <var>: a loopback port no socket uses, not handed out before
# (20000-31999, below the ephemeral range; as scripts/lib-e2e.sh's e2e_port).
PORTS=" "
free_port() {
	local p hex
	for _ in $(seq 1 500); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
		case $PORTS in *" $p "*) continue ;; esac
		hex=$(printf '%04X' "$p")
		if awk -v h=":$hex" 'toupper(substr($2, length($2) - 4)) == h {f = 1} END {exit !f}' \
			/proc/net/tcp /proc/net/tcp6 2>/dev/null; then
			continue
		fi
		PORTS+="$p "
		printf -v "$1" '%s' "$p"
		return 0
	done
	die "no free port found"
}

# ---------------------------------------------------------------------------
log "building keyraft into $W"
(cd "$REPO" && go build -o "$W/keyraft" ./cmd/keyraft)
KR=$W/keyraft

# No client settings from the caller's environment; the CLI and bench use
# the admin client certificate and trust the nodes' self-signed certificates.
unset KES_SERVER KES_API_KEY KES_ENCLAVE MINIO_KES_SERVER MINIO_KES_API_KEY \
	MINIO_KMS_KES_ENDPOINT MINIO_KMS_KES_API_KEY MINIO_KMS_KES_CERT_FILE \
	MINIO_KMS_KES_KEY_FILE MINIO_KMS_KES_ENCLAVE MINIO_KES_CERT_FILE \
	MINIO_KES_KEY_FILE MINIO_KES_CLIENT_CERT MINIO_KES_CLIENT_KEY 2>/dev/null || true
mkdir -p "$W/cas"
declare -a API RAFT NODE_ID
for n in 1 2 3; do
	free_port "API[$n]"
	free_port "RAFT[$n]"
	"$KR" identity new "node$n" --key "$W/node$n.key" --cert "$W/node$n.cert" \
		--ip 127.0.0.1 --dns localhost --json >/dev/null
	NODE_ID[n]=$("$KR" identity of "$W/node$n.cert")
	cp "$W/node$n.cert" "$W/cas/"
done
ADMIN_ID=$("$KR" identity new scale-admin --key "$W/admin.key" --cert "$W/admin.cert" --json | jq -r .identity)
export KES_CLIENT_CERT=$W/admin.cert KES_CLIENT_KEY=$W/admin.key MINIO_KMS_KES_CAPATH=$W/cas
URL=()
for n in 1 2 3; do URL[n]=https://127.0.0.1:${API[n]}; done
ENDPOINTS="${URL[1]},${URL[2]},${URL[3]}"

# Same policies and keystore on every node; nodes 2 and 3 join through node
# 1, authorized by the cluster-nodes policy (as scripts/e2e-minio.sh).
for n in 1 2 3; do
	join=""
	[ "$n" -eq 1 ] || join="  join: [${URL[1]}]"
	cat >"$W/node$n.yaml" <<EOF
address: 127.0.0.1:${API[n]}
admin:
  identity: $ADMIN_ID
tls:
  key: $W/node$n.key
  cert: $W/node$n.cert
log:
  error: on
  audit: off
policy:
  cluster-nodes:
    allow: [/v1/cluster/join]
    identities: [${NODE_ID[2]}, ${NODE_ID[3]}]
keystore:
  fs:
    path: $W/keys
cluster:
  node_id: node$n
  data_dir: $W/data/node$n
  raft_address: 127.0.0.1:${RAFT[n]}
$join
EOF
done

# kcurl <node> <path> [curl args...]: curl against a node as the admin.
kcurl() {
	local n=$1 path=$2
	shift 2
	curl -sk --max-time 5 --cert "$W/admin.cert" --key "$W/admin.key" "$@" -- "${URL[n]}$path"
}
# ready <node>: /v1/ready answers 200.
ready() { [ "$(kcurl "$1" /v1/ready -o /dev/null -w '%{http_code}')" = 200 ]; }
# metric <node> <name>: a node's counter or gauge as an integer (summed over
# its labels; 0 if the node does not answer).
metric() {
	{ kcurl "$1" /v1/metrics || true; } | awk -v m="$2" '$1 == m || index($1, m "{") == 1 {s += $2} END {printf "%d\n", s}'
}
# heap_b <node>: Go heap in use (mem_heap_used of /v1/status) in bytes.
heap_b() { { kcurl "$1" /v1/status || true; } | jq -r '.mem_heap_used // 0' | grep . || echo 0; }
# sample <phase>: for every node, RSS<phase>, ANON<phase> and FILE<phase>
# (VmRSS, RssAnon, RssFile from /proc/<pid>/status, KiB; RssFile is mostly
# the memory-mapped bbolt files) and HEAP<phase> (bytes).
declare -A RSS0 RSS1 RSS2 RSS3 ANON0 ANON1 ANON2 ANON3 FILE0 FILE1 FILE2 FILE3 HEAP0 HEAP1 HEAP2 HEAP3
sample() {
	local -n rss=RSS$1 anon=ANON$1 file=FILE$1 heap=HEAP$1
	local n
	for n in 1 2 3; do
		read -r "rss[$n]" "anon[$n]" "file[$n]" < <(awk '/^VmRSS:/ {r = $2} /^RssAnon:/ {a = $2}
			/^RssFile:/ {f = $2} END {print r, a, f}' "/proc/${PID[$n]}/status")
		heap[$n]=$(heap_b "$n")
	done
}
# alive <node>: the node's process runs (and is not a zombie).
alive() {
	local p=${PID[$1]:-}
	[ -n "$p" ] && [ -r "/proc/$p/stat" ] && [ "$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]
}

# start_node <n>: starts node n in the background (output appended to
# $W/node<n>.log) and records its PID.
start_node() {
	echo "---- start $(date -Is)" >>"$W/node$1.log"
	"$KR" server --auth=off --config="$W/node$1.yaml" >>"$W/node$1.log" 2>&1 </dev/null &
	PID[$1]=$!
}
# stop_node <n>: SIGTERM, wait for the process to exit (a watchdog sends
# SIGKILL after 60 s).
stop_node() {
	local p=${PID[$1]} dog
	kill -TERM "$p"
	(sleep 60 && echo "scale: node$1 ignored SIGTERM for 60 s; killing it" >&2 && kill -KILL "$p") &
	dog=$!
	wait "$p" 2>/dev/null || true
	kill "$dog" 2>/dev/null || true
	wait "$dog" 2>/dev/null || true
	unset "PID[$1]"
}
# wait_for <seconds> <node or -> <command...>: polls the command every 0.05 s
# until it succeeds; fails at the deadline or when the node exits.
wait_for() {
	local deadline=$((SECONDS + $1)) n=$2
	shift 2
	until "$@" >/dev/null 2>&1; do
		if [ "$n" != - ] && ! alive "$n"; then die "node$n exited (see its log)"; fi
		((SECONDS < deadline)) || die "timed out after ${deadline}s waiting for: $*"
		sleep 0.05
	done
}
# leader: the number of the node that reports itself leader (fails if none).
leader() {
	local n
	for n in 1 2 3; do
		alive "$n" || continue
		if [ "$(metric "$n" keyraft_cluster_is_leader)" = 1 ]; then echo "$n"; return 0; fi
	done
	return 1
}
cluster_formed() {
	local st
	st=$("$KR" cluster status --json --server "${URL[1]}") || return 1
	[ "$(grep -o '"voter":true' <<<"$st" | wc -l)" -eq 3 ] &&
		grep -q '"leader":"node[123]"' <<<"$st" && ! grep -q '"error"' <<<"$st"
}
# applies <node>: "<type> <count>" lines of keyraft_raft_applies_total.
applies() {
	{ kcurl "$1" /v1/metrics || true; } |
		awk '/^keyraft_raft_applies_total\{/ && match($0, /type="[^"]*"/) {print substr($0, RSTART + 6, RLENGTH - 7), $NF}'
}
# applies_delta <before> <after>: the types that changed, "<type> +<n>, ...".
applies_delta() {
	awk 'NR == FNR {b[$1] = $2; next} $2 != b[$1] {printf "%s%s +%d", sep, $1, $2 - b[$1]; sep = ", "}' \
		<(echo "$1") <(echo "$2")
}
# elections: leader elections won so far, counted in the nodes' logs.
elections() { cat "$W"/node*.log | grep -c 'entering leader state' || true; }
# synced: the three nodes report the same applied Raft index.
synced() {
	local a b c
	a=$(metric 1 keyraft_cluster_applied_index) b=$(metric 2 keyraft_cluster_applied_index)
	c=$(metric 3 keyraft_cluster_applied_index)
	((a > 0 && a == b && a == c))
}
# has_keys <node> <count>: the node holds at least <count> key records.
has_keys() { (($(metric "$1" keyraft_cache_sealed_keys) >= $2)); }
# du_b <path>: bytes on disk (apparent size) of a file or directory.
du_b() { if [ -e "$1" ]; then du -sb "$1" | cut -f1; else echo 0; fi; }

# ---------------------------------------------------------------------------
log "starting three nodes (API ports ${API[1]} ${API[2]} ${API[3]})"
start_node 1
wait_for 60 1 ready 1
start_node 2
start_node 3
wait_for 60 2 ready 2
wait_for 60 3 ready 3
wait_for 60 - cluster_formed
log "cluster formed: leader node$(leader), pids ${PID[1]} ${PID[2]} ${PID[3]}"
sleep "$SETTLE"
sample 0
log "RSS empty (KiB): ${RSS0[1]} ${RSS0[2]} ${RSS0[3]}"

# ---------------------------------------------------------------------------
# Loading: one bench process creates scale-0 to scale-(N-1) through all
# three endpoints, 32 creates at a time (followers forward them to the
# leader). --duration 1ms: the generate window after the creation is
# negligible, so the keys stay unused (sealed only). Four bench processes in
# parallel (distinct --name) loaded no faster than one.
# A create fails when the cluster has no leader for a moment (on a loaded
# machine a leader that hears no follower for 500 ms steps down); bench then
# stops, and is run again: it creates only the keys still missing.
LOAD_ATTEMPTS=5
base_keys=$(metric 1 keyraft_cache_sealed_keys)
elections0=$(elections)
applies0=$(applies 1)
log "loading $N keys"
t0=$(now_ms)
last_ms=$t0 last_keys=0
for ((attempt = 1; ; attempt++)); do
	"$KR" bench --keys "$N" --name scale --op generate --duration 1ms --concurrency 1 \
		--server "$ENDPOINTS" --json >"$W/load.json" 2>"$W/load.err" &
	LOADER=$!
	EXTRA_PIDS+=("$LOADER")
	# Progress every 10 s: keys in node 1's FSM.
	while kill -0 "$LOADER" 2>/dev/null; do
		sleep 1
		ms=$(now_ms)
		((ms - last_ms >= 10000)) || continue
		k=$(($(metric 1 keyraft_cache_sealed_keys) - base_keys))
		log "  $k / $N keys, $(((k - last_keys) * 1000 / (ms - last_ms))) keys/s now, $((k * 1000 / (ms - t0))) keys/s overall"
		last_ms=$ms last_keys=$k
	done
	rc=0
	wait "$LOADER" || rc=$?
	EXTRA_PIDS=()
	((rc != 0)) || break
	((attempt < LOAD_ATTEMPTS)) || { cat "$W/load.err" >&2; die "loading failed $attempt times"; }
	log "  loading stopped: $(tail -n 1 "$W/load.err"); waiting for a leader, then creating the missing keys"
	wait_for 60 - leader
done
LOAD_ELECTIONS=$(($(elections) - elections0))
# Every node has applied everything.
wait_for 120 - synced
LOAD_MS=$(($(now_ms) - t0))
LOAD_RATE=$((N * 1000 / LOAD_MS))
log "loaded $N keys in $(secs "$LOAD_MS")s: $LOAD_RATE keys/s ($attempt bench run(s), $LOAD_ELECTIONS leader election(s))"
LOAD_APPLIES=$(applies_delta "$applies0" "$(applies 1)")
log "  Raft applies during loading (node1): $LOAD_APPLIES"
# A key can end up in the keystore only: its create's apply was lost in a
# leader change (the rerun then finds it in the keystore: "exists"), or the
# leader's keystore revalidation (every cache.expiry.any) evicted records
# created while it listed the keystore (remove_keys applies above). Such a
# key is loaded into Raft on first use (here: the decrypt bench's set-up).
IN_RAFT=$(($(metric 1 keyraft_cache_sealed_keys) - base_keys))
((IN_RAFT >= N)) || log "  $((N - IN_RAFT)) key(s) are in the keystore only, not in Raft: loaded on first use"

sleep "$SETTLE"
sample 1
log "RSS loaded (KiB): ${RSS1[1]} ${RSS1[2]} ${RSS1[3]}"

# ---------------------------------------------------------------------------
log "cluster snapshot save"
t0=$(now_ms)
"$KR" cluster snapshot save "$W/backup.snap" --server "${URL[1]}" >"$W/snapshot.out" 2>&1 ||
	{ cat "$W/snapshot.out" >&2; die "snapshot save failed"; }
SNAP_MS=$(($(now_ms) - t0))
SNAP_B=$(du_b "$W/backup.snap")
log "snapshot: $SNAP_B bytes in $(secs "$SNAP_MS")s"

# ---------------------------------------------------------------------------
# Decrypt bench over all N keys and all three nodes. Before its window it
# sends a create for every key (answered "exists") and seals one data key per
# key; it reports the servers' CPU and counters over the window.
log "decrypt bench: $DECRYPT_DURATION over all keys and all nodes (after sealing one data key per key)"
# Run again (up to 3 times) if a leader change failed a request of the set-up.
elections0=$(elections)
for ((dec_attempt = 1; ; dec_attempt++)); do
	"$KR" bench --keys "$N" --name scale --op decrypt --duration "$DECRYPT_DURATION" --server "$ENDPOINTS" \
		--metrics --server-pids "${PID[1]},${PID[2]},${PID[3]}" --json >"$W/decrypt.json" 2>"$W/decrypt.err" &
	BENCH=$!
	EXTRA_PIDS+=("$BENCH")
	rc=0
	wait "$BENCH" || rc=$?
	EXTRA_PIDS=()
	((rc != 0)) || break
	((dec_attempt < 3)) || { cat "$W/decrypt.err" >&2; die "decrypt bench failed $dec_attempt times"; }
	log "  decrypt bench stopped: $(tail -n 1 "$W/decrypt.err"); waiting for a leader, then running it again"
	wait_for 60 - leader
done
DEC_ELECTIONS=$(($(elections) - elections0))
D=$W/decrypt.json
DEC_RPS=$(jq '.requests_per_second | floor' "$D")
DEC_ERR=$(jq '.errors' "$D")
DEC_P99=$(jq '.p99_ms' "$D")
DEC_CPU=$(jq '.cpu_us_per_request // "-" | if type == "number" then floor else . end' "$D")
DEC_APPLIES=$(jq '.metrics.keyraft_raft_applies_total.total // "absent"' "$D")
DEC_GETS=$(jq '.metrics.keyraft_keystore_calls_total.by.get // 0' "$D")
DEC_KSCALLS=$(jq -c '.metrics.keyraft_keystore_calls_total.by // {}' "$D")
DEC_UNSEALS=$(jq '.metrics.keyraft_cache_unseal_total.total // "absent"' "$D")
log "decrypt: $DEC_RPS req/s, p99 ${DEC_P99} ms, $DEC_ERR errors, Raft applies +$DEC_APPLIES, keystore get +$DEC_GETS"
sleep "$SETTLE"
sample 2
declare -A UNSEALED
for n in 1 2 3; do
	UNSEALED[$n]=$(metric "$n" keyraft_cache_unsealed_keys)
done
log "RSS after decrypt (KiB): ${RSS2[1]} ${RSS2[2]} ${RSS2[3]}; unsealed keys ${UNSEALED[1]} ${UNSEALED[2]} ${UNSEALED[3]}"

# ---------------------------------------------------------------------------
# Seal-key rotation under load (ROTATE).
# rotated <seal>: every node reports <seal> as its seal key, no rotation.
rotated() {
	local n
	for n in 1 2 3; do
		kcurl "$n" /v1/cluster/status | jq -e --arg s "$1" '.seal.id == $s and (.seal.rotating_to // "") == ""' >/dev/null || return 1
	done
}
if [ -n "$ROTATE" ]; then
	# The bench first answers "exists" for every key and seals a data key
	# per key; its window starts at start_at, after that set-up.
	start_at=$(($(date +%s) + 15 + N / 400))
	log "seal rotation: decrypt bench over all keys and nodes for $ROTATE_DURATION from $(date -d "@$start_at" +%T)"
	"$KR" bench --keys "$N" --name scale --op decrypt --duration "$ROTATE_DURATION" --server "$ENDPOINTS" \
		--start-at "$start_at" --failover --json >"$W/rotate.json" 2>"$W/rotate.err" &
	BENCH=$!
	EXTRA_PIDS+=("$BENCH")
	while (($(date +%s) < start_at + 3)); do
		kill -0 "$BENCH" 2>/dev/null || { cat "$W/rotate.err" >&2; die "the rotation's bench stopped early"; }
		sleep 0.2
	done
	OLD_SEAL=$(kcurl 1 /v1/cluster/status | jq -r .seal.id)
	t0=$(now_ms)
	"$KR" cluster rotate-seal --no-wait --json --server "$ENDPOINTS" >"$W/rotate-begin.json"
	NEW_SEAL=$(jq -r .rotating_to "$W/rotate-begin.json")
	[ -n "$NEW_SEAL" ] && [ "$NEW_SEAL" != null ] || die "rotate-seal did not begin a rotation: $(cat "$W/rotate-begin.json")"
	L=$(leader) || die "no leader"
	ROT_NODE=$((L % 3 + 1))
	stop_node "$ROT_NODE"
	ROT_STOPPED=$(($(now_ms) - t0))
	start_node "$ROT_NODE"
	wait_for 600 - rotated "$NEW_SEAL"
	ROT_MS=$(($(now_ms) - t0))
	wait_for 600 "$ROT_NODE" ready "$ROT_NODE"
	rc=0
	wait "$BENCH" || rc=$?
	EXTRA_PIDS=()
	((rc == 0)) || { cat "$W/rotate.err" >&2; die "the rotation's bench failed"; }
	ROT_REQ=$(jq .requests "$W/rotate.json")
	ROT_ERR=$(jq .errors "$W/rotate.json")
	ROT_P99=$(jq .p99_ms "$W/rotate.json")
	log "seal rotation $OLD_SEAL -> $NEW_SEAL: $N key records re-sealed, every node on the new key $(secs "$ROT_MS")s after rotate-seal;" \
		"node$ROT_NODE stopped $(secs "$ROT_STOPPED")s into the rotation and started again;" \
		"bench: $ROT_REQ requests, $ROT_ERR errors, p99 $ROT_P99 ms"
	wait_for 30 - test ! -e "$W/keys/keyraft.seal" # removed once every member applied the finish
	[ "$ROT_ERR" = 0 ] || die "$ROT_ERR requests failed during the seal rotation: $(jq -c .error_samples "$W/rotate.json")"
	wait_for 60 - cluster_formed
fi

# ---------------------------------------------------------------------------
# Restart-to-serving. A ciphertext is made on the node (key in the middle of
# the first key set) before the stop; after the start the script polls
# /v1/ready, then the decrypt of that ciphertext, on that node only.
PLAIN=$(printf 'scale-restart-check' | base64)
CHECK_KEY=scale-$((N / 2))
CT=""
# encrypt_on <node>: sets CT to a ciphertext of PLAIN under CHECK_KEY.
encrypt_on() {
	CT=$(kcurl "$1" "/v1/key/encrypt/$CHECK_KEY" -X PUT --data "{\"plaintext\":\"$PLAIN\"}" | jq -er .ciphertext)
}
# decrypts_on <node>: the node decrypts CT back to PLAIN.
decrypts_on() {
	local pt
	pt=$(kcurl "$1" "/v1/key/decrypt/$CHECK_KEY" -X PUT --data "{\"ciphertext\":\"$CT\"}" | jq -er .plaintext) &&
		[ "$pt" = "$PLAIN" ]
}
# startup_log <node>: from the node's log since its last start, the seconds
# from "keyraft starting" to Raft's "initial configuration" (state checks,
# opening fsm.db, restoring the latest Raft snapshot) and to "serving".
startup_log() {
	awk '
		function ms(ts) { split(substr(ts, 12, 12), t, ":"); return (t[1] * 3600 + t[2] * 60 + t[3]) * 1000 }
		/^---- start/ { a = b = c = 0 }
		/keyraft starting/ && !a { a = ms($1) }
		/initial configuration/ && !b { b = ms($1) }
		/keyraft node is serving/ && !c { c = ms($1) }
		END { if (a && b && c) printf "log: start to Raft open %.2fs, to serving %.2fs", (b - a) / 1000, (c - a) / 1000 }' "$W/node$1.log"
}
# other_leader <old>: a node other than <old> reports itself leader.
other_leader() { local l; l=$(leader) && [ "$l" != "$1" ]; }

# restart <node> <role>: stop, start, time ready and decrypt; sets
# R_STOP R_FAILOVER R_READY R_DECRYPT R_KEYS (ms, "-" if not measured);
# R_KEYS: until the node holds as many key records as before the stop.
restart() {
	local n=$1 role=$2 t0 t1 keys
	keys=$(metric "$n" keyraft_cache_sealed_keys)
	encrypt_on "$n" || die "encrypt on node$n failed"
	decrypts_on "$n" || die "decrypt on node$n failed before the restart"
	log "restart $role node$n: SIGTERM pid ${PID[$n]}"
	t0=$(now_ms)
	stop_node "$n"
	t1=$(now_ms)
	R_STOP=$((t1 - t0)) R_FAILOVER=-
	if [ "$role" = leader ]; then
		wait_for 60 - other_leader "$n"
		R_FAILOVER=$(($(now_ms) - t0))
	fi
	t0=$(now_ms)
	start_node "$n"
	wait_for 600 "$n" ready "$n"
	R_READY=$(($(now_ms) - t0))
	wait_for 600 "$n" decrypts_on "$n"
	R_DECRYPT=$(($(now_ms) - t0))
	wait_for 600 "$n" has_keys "$n" "$keys"
	R_KEYS=$(($(now_ms) - t0))
	R_LOG=$(startup_log "$n")
	log "  node$n: stopped in $(secs "$R_STOP")s$([ "$R_FAILOVER" = - ] || echo ", new leader $(secs "$R_FAILOVER")s after SIGTERM");" \
		"ready $(secs "$R_READY")s, decrypt ok $(secs "$R_DECRYPT")s, all $keys key records $(secs "$R_KEYS")s after start ($R_LOG)"
}

L=$(leader) || die "no leader"
F=$((L % 3 + 1))
restart "$F" follower
FOL=("$F" "$R_STOP" "$R_FAILOVER" "$R_READY" "$R_DECRYPT" "$R_KEYS" "$R_LOG")
wait_for 60 - cluster_formed
L=$(leader) || die "no leader"
restart "$L" leader
LEAD=("$L" "$R_STOP" "$R_FAILOVER" "$R_READY" "$R_DECRYPT" "$R_KEYS" "$R_LOG")
wait_for 60 - cluster_formed
sleep "$SETTLE"
sample 3

# ---------------------------------------------------------------------------
# Summary.
declare -A FSM RAFTDB SNAPS DATA
for n in 1 2 3; do
	FSM[$n]=$(du_b "$W/data/node$n/fsm.db")
	RAFTDB[$n]=$(du_b "$W/data/node$n/raft.db")
	SNAPS[$n]=$(du_b "$W/data/node$n/snapshots")
	DATA[$n]=$(du_b "$W/data/node$n")
done
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
per_key() { awk -v b="$1" -v n="$N" 'BEGIN {printf "%.0f", b / n}'; }
row() { printf '%-34s %14s %14s %14s\n' "$@"; }
# row_mib <label> <array> [<scale>]: the array's values (times scale) in MiB.
row_mib() {
	local -n a=$2
	row "$1" "$(mib $((${a[1]} * ${3:-1})))" "$(mib $((${a[2]} * ${3:-1})))" "$(mib $((${a[3]} * ${3:-1})))"
}
# row_per_key <label> <array> <base array or -> [<scale>]: (a - base) / N.
row_per_key() {
	local -n a=$2
	local n v=()
	for n in 1 2 3; do
		if [ "$3" = - ]; then v+=("$(per_key $((${a[$n]} * ${4:-1})))"); else
			local -n b=$3
			v+=("$(per_key $(((${a[$n]} - ${b[$n]}) * ${4:-1})))")
		fi
	done
	row "$1" "${v[@]}"
}
role() { if [ "$1" = "${LEAD[0]}" ]; then echo "leader*"; elif [ "$1" = "${FOL[0]}" ]; then echo "follower*"; else echo follower; fi; }

echo
echo "== Keyraft scale: N=$N keys, 3 nodes, fs keystore, $(nproc) CPUs, $(date -Is)"
row "" node1 node2 node3
row "role before restart (* restarted)" "$(role 1)" "$(role 2)" "$(role 3)"
row_mib "RSS empty (MiB)" RSS0 1024
row_mib "RSS loaded (MiB)" RSS1 1024
row_mib "RSS after decrypt bench (MiB)" RSS2 1024
row_mib "RSS after the restarts (MiB)" RSS3 1024
row_per_key "RSS growth per key, load (B)" RSS1 RSS0 1024
row_per_key "  of it RssAnon (B)" ANON1 ANON0 1024
row_per_key "  of it RssFile (bbolt mmap) (B)" FILE1 FILE0 1024
row_per_key "Go heap growth per key, load (B)" HEAP1 HEAP0
row_per_key "RSS per key after restarts (B)" RSS3 RSS0 1024
row "unsealed keys after decrypt" "${UNSEALED[1]}" "${UNSEALED[2]}" "${UNSEALED[3]}"
row_mib "fsm.db (MiB)" FSM
row_per_key "fsm.db per key (B)" FSM -
row_mib "raft.db (MiB)" RAFTDB
row_mib "Raft snapshots (MiB)" SNAPS
row_mib "data_dir total (MiB)" DATA
echo
KS_B=$(du_b "$W/keys")
printf '%-34s %s\n' \
	"keystore dir (shared)" "$(mib "$KS_B") MiB, $(per_key "$KS_B") B/key ($(find "$W/keys" -type f | wc -l) files)" \
	"snapshot save" "$(mib "$SNAP_B") MiB, $(per_key "$SNAP_B") B/key, took $(secs "$SNAP_MS")s" \
	"load (one bench process)" "$N keys in $(secs "$LOAD_MS")s = $LOAD_RATE keys/s; $attempt bench run(s), $LOAD_ELECTIONS leader election(s) meanwhile, $IN_RAFT keys in Raft after it" \
	"  Raft applies meanwhile (node1)" "$LOAD_APPLIES" \
	"decrypt bench ($DECRYPT_DURATION, 3 nodes)" "$DEC_RPS req/s, p99 $DEC_P99 ms, $DEC_ERR errors, server CPU $DEC_CPU µs/req; $dec_attempt run(s), $DEC_ELECTIONS leader election(s) incl. set-up" \
	"  over its window" "Raft applies +$DEC_APPLIES, keystore get +$DEC_GETS (all calls $DEC_KSCALLS), unseals +$DEC_UNSEALS" \
	"follower restart (node${FOL[0]})" "stop $(secs "${FOL[1]}")s; from start: ready $(secs "${FOL[3]}")s, decrypt ok $(secs "${FOL[4]}")s, all keys $(secs "${FOL[5]}")s" \
	"" "${FOL[6]}" \
	"leader restart (node${LEAD[0]})" "stop $(secs "${LEAD[1]}")s, new leader $(secs "${LEAD[2]}")s after SIGTERM; from start: ready $(secs "${LEAD[3]}")s, decrypt ok $(secs "${LEAD[4]}")s, all keys $(secs "${LEAD[5]}")s" \
	"" "${LEAD[6]}" \
	"total run time" "$((SECONDS - T_START))s"
