#!/usr/bin/env bash
# e2e-minio-outage.sh: MinIO keeps working through an AWS outage, end to end.
#
# Sets up MinIO's "SSE with AWS Secrets Manager root KMS" guide
# (/work/shared/spec/minio-sse-aws-guide.md) with `keyraft` in place of `kes`:
# three Keyraft nodes in one cluster (docs/minio.md, "Several Keyraft
# nodes"), each with the guide's keystore.aws.secretsmanager section (the
# endpoint is the kumo AWS emulator, static credentials, kmskey ""), and NO
# cache: section, so KES's defaults apply (any 5m, unused 30s, offline 0).
# MinIO lists all three nodes in MINIO_KMS_KES_ENDPOINT. Three buckets get
# SSE-KMS bucket-default encryption with three distinct keys, and objects.
#
# Then, for each scenario, a load loop runs against MinIO (every 0.2 s,
# alternating: GET of an object uploaded before the outage, compared with
# its source; PUT of a new object into one of the encrypted buckets), while
# AWS is taken away for $OUTAGE seconds:
#
#   1. down   kumo is stopped (SIGTERM; it saves its data dir) and, after
#             the outage, started again on the same port and data dir;
#   2. hung   kumo is frozen with SIGSTOP (connections are accepted by the
#             kernel but never answered), then resumed with SIGCONT.
#
# During the outage it also tries `mc admin kms key create` once (expected
# to fail: creating a key needs AWS; the outcome is reported, not checked).
# From the moment AWS is back (kumo answers again / SIGCONT) it tries to
# create a new key every 0.2 s, and keeps the load loop running.
#
# Checks per scenario (each failure fails the run):
#   - no GET and no PUT on an existing key failed, before, during or after
#     the outage (an operation taking longer than $OP_TIMEOUT s is a failure);
#   - a new key is created within $RECOVERY_MAX s of AWS's return, and works
#     (a new bucket encrypted with it takes and returns an object);
#   - "all green" (loop and key creation) within $RECOVERY_MAX s of AWS's
#     return;
#   - the objects written during the scenario read back, with their bucket's
#     SSE-KMS key, and kumo still holds the keys made before the outage.
# A summary per scenario is printed at the end: GETs/PUTs ok/failed and the
# slowest one during the outage, the key creation during the outage, and the
# seconds from AWS's return to all-green.
#
# Run from the repository root: bash scripts/e2e-minio-outage.sh
# Takes about 2 * ($OUTAGE + 45) s plus ~20 s of setup (5 min with the
# default 90 s outages) once minio, mc and kumo are installed. Needs Go and
# the Go module proxy (to install minio, mc and kumo when missing);
# everything else runs on 127.0.0.1 with free ports in a temporary directory
# removed at exit. Every process it starts is stopped by PID at exit (a
# frozen kumo is resumed first).
#
# Environment (optional):
#   OUTAGE         seconds AWS is away in each scenario (default 90; e.g. 10
#                  while developing)
#   RECOVERY_MAX   seconds allowed from AWS's return to all-green (default 2)
#   OP_TIMEOUT     seconds after which a GET or PUT counts as failed
#                  (default 10)
#   SCENARIOS      which scenarios to run, in order (default "down hung")
#   KEEP_LOGS      a directory to copy the logs (processes, load loops) into
#                  before the temporary directory is removed
#   MINIO_VERSION, MC_VERSION, GOBIN   as in scripts/e2e-minio.sh
#   KUMO_BIN       the kumo binary (default: kumo on $PATH, else $GOBIN/kumo,
#                  installed with `go install .../kumo@v0.33.1` if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
# shellcheck source=scripts/lib-e2e.sh
. "$REPO/scripts/lib-e2e.sh"

OUTAGE=${OUTAGE:-90}
RECOVERY_MAX=${RECOVERY_MAX:-2}
OP_TIMEOUT=${OP_TIMEOUT:-10}
SCENARIOS=${SCENARIOS:-down hung}
KUMO_VERSION=v0.33.1
for v in OUTAGE RECOVERY_MAX OP_TIMEOUT; do
	if ! [[ ${!v} =~ ^[1-9][0-9]*$ ]]; then
		echo "$v must be a positive whole number of seconds, not '${!v}'" >&2
		exit 2
	fi
done
for sc in $SCENARIOS; do
	case $sc in down | hung) ;; *)
		echo "SCENARIOS: unknown scenario '$sc' (down, hung)" >&2
		exit 2
		;;
	esac
done

LOOP_INTERVAL=0.2 # seconds between two operations of the load loop
BASELINE=3        # seconds of load before AWS goes away
AFTER=15          # seconds of load after AWS is back
# When the key creation during the outage is tried (after AWS went away),
# and how long it may take (it must end before AWS returns).
DOWN_CREATE_AT=$((OUTAGE >= 20 ? 5 : OUTAGE / 4 + 1))
DOWN_CREATE_TIMEOUT=$((OUTAGE - DOWN_CREATE_AT - 1 > 60 ? 60 : OUTAGE - DOWN_CREATE_AT - 1))
[ "$DOWN_CREATE_TIMEOUT" -ge 1 ] || DOWN_CREATE_TIMEOUT=1
RECREATE_FOR=30 # seconds the key creation is retried after AWS is back

e2e_init keyraft-e2e-minio-outage
W=$E2E_WORK
KUMO_FROZEN=""
# resume_kumo: SIGCONT for a kumo frozen by the hung scenario, so that the
# EXIT trap can stop it.
resume_kumo() {
	if [ -n "$KUMO_FROZEN" ]; then
		kill -CONT "$KUMO_FROZEN" 2>/dev/null || true
		KUMO_FROZEN=""
	fi
}
# keep_logs: copies the logs to $KEEP_LOGS, if set.
keep_logs() {
	[ -n "${KEEP_LOGS:-}" ] || return 0
	mkdir -p "$KEEP_LOGS" && cp -r "$W/logs/." "$KEEP_LOGS/" &&
		echo "logs copied to $KEEP_LOGS"
}
# The library's EXIT trap (e2e_exit), after resuming kumo and keeping the
# logs; e2e_exit reads the exit status from $?.
trap 'e2e_rc=$?; set +e; resume_kumo; keep_logs; (exit "$e2e_rc"); e2e_exit' EXIT

DEFAULT_KEY=minio-backend-default-key
ROOT_USER=e2e-root
ROOT_PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
export MC_CONFIG_DIR="$W/mc"
unset KES_SERVER KES_API_KEY KES_CLIENT_CERT KES_CLIENT_KEY KES_ENCLAVE \
	MINIO_KMS_KES_ENDPOINT MINIO_KMS_KES_API_KEY MINIO_KMS_KES_CERT_FILE \
	MINIO_KMS_KES_KEY_FILE MINIO_KMS_KES_CAPATH MINIO_KMS_KES_ENCLAVE 2>/dev/null || true

# ---------------------------------------------------------------------------
e2e_phase "install minio, mc and kumo"
BIN_DIR=$(e2e_bin_dir)
e2e_must "minio installed" e2e_go_install "$BIN_DIR" minio github.com/minio/minio \
	"${MINIO_VERSION:-latest}" "$E2E_MINIO_PINNED"
echo "    $E2E_INSTALLED"
e2e_must "mc installed" e2e_go_install "$BIN_DIR" mc github.com/minio/mc \
	"${MC_VERSION:-latest}" "$E2E_MC_PINNED"
echo "    $E2E_INSTALLED"
MINIO_BIN=$BIN_DIR/minio
MC_BIN=$BIN_DIR/mc
if [ -n "${KUMO_BIN:-}" ]; then
	e2e_must "KUMO_BIN=$KUMO_BIN runs" "$KUMO_BIN" --help
elif KUMO_BIN=$(command -v kumo); then
	echo "    kumo found at $KUMO_BIN"
else
	# What internal/awstest installs (awstest.InstallCommand).
	E2E_GO_INSTALL_ENV=(GONOSUMDB=github.com/aws/aws-sdk-go-v2/service GOFLAGS=-mod=mod)
	e2e_must "kumo installed" e2e_go_install "$BIN_DIR" kumo github.com/sivchari/kumo/cmd/kumo "$KUMO_VERSION"
	E2E_GO_INSTALL_ENV=()
	echo "    $E2E_INSTALLED"
	KUMO_BIN=$BIN_DIR/kumo
fi

# ---------------------------------------------------------------------------
e2e_phase "build keyraft"
mkdir -p "$W/bin"
BUILD_FLAGS=()
command -v git >/dev/null || BUILD_FLAGS+=(-buildvcs=false)
e2e_must "go build ./cmd/keyraft" go build "${BUILD_FLAGS[@]}" -o "$W/bin/keyraft" ./cmd/keyraft
export PATH="$W/bin:$BIN_DIR:$PATH"

# mc, bounded in time so that a hung MinIO fails the run instead of
# stalling it.
mc() { timeout 60 "$MC_BIN" "$@"; }

# ---------------------------------------------------------------------------
e2e_phase "setup: kumo, three keyraft nodes, MinIO, encrypted buckets"
P=$W/cluster
mkdir -p "$P/cas" "$P/kumo-data" "$W/home" "$W/minio-certs" "$W/files"
cd "$P"
e2e_port KUMO_PORT
e2e_port MINIO_PORT
e2e_port CONSOLE_PORT

# start_kumo: kumo on 127.0.0.1:$KUMO_PORT, persisting to $P/kumo-data
# (KUMO_DATA_DIR; flushed every 100 ms and at SIGTERM), so that a restarted
# kumo has the secrets of the stopped one. Waits until it answers.
start_kumo() {
	e2e_start kumo env -i PATH="$PATH" HOME="$W/home" KUMO_HOST=127.0.0.1 KUMO_PORT="$KUMO_PORT" \
		KUMO_DATA_DIR="$P/kumo-data" KUMO_PERSIST_FLUSH_INTERVAL_MS=100 KUMO_LOG_LEVEL=warn "$KUMO_BIN"
	e2e_wait kumo 30 e2e_kumo_ok "$KUMO_PORT"
}
e2e_must "kumo (AWS emulator) answers on 127.0.0.1:$KUMO_PORT" start_kumo

# Certificates and identities: one per node, MinIO's client certificate, and
# an admin API key for `keyraft cluster status` and `keyraft key create`.
declare -a API RAFT NODE_ID
e2e_cluster_identities

# The guide's configuration (policy for MinIO verbatim, AWS Secrets Manager
# keystore, no cache section) plus the cluster section of docs/minio.md; the
# admin identity stands in for the guide's `root: disabled` so that the
# cluster can be inspected.
for n in 1 2 3; do
	join=""
	[ "$n" -eq 1 ] || join="  join: [https://127.0.0.1:${API[1]}]"
	# shellcheck disable=SC2016 # ${MINIO_IDENTITY_HASH} is for keyraft to expand
	cat >"$P/node$n.yaml" <<EOF
address: 127.0.0.1:${API[n]}
admin:
  identity: $ADMIN_ID
tls:
  key: $P/node$n.key
  cert: $P/node$n.cert
policy:
  minio:
    allow:
    - /v1/key/create/*
    - /v1/key/generate/*
    - /v1/key/decrypt/*
    - /v1/key/bulk/decrypt
    - /v1/key/list
    - /v1/status
    - /v1/metrics
    - /v1/log/audit
    - /v1/log/error
    identities:
    - \${MINIO_IDENTITY_HASH}
  cluster-nodes:
    allow: [/v1/cluster/join]
    identities: [${NODE_ID[2]}, ${NODE_ID[3]}]
keystore:
  aws:
    secretsmanager:
      endpoint: http://127.0.0.1:$KUMO_PORT
      region: us-east-1
      kmskey: ""
      credentials:
        accesskey: "AKIAKEYRAFTE2EOUTAGE"
        secretkey: "keyraft-e2e-outage-secret-key"
cluster:
  node_id: node$n
  data_dir: $P/data/node$n
  raft_address: 127.0.0.1:${RAFT[n]}
$join
EOF
done
cat >"$P/minio.env" <<EOF
MINIO_ROOT_USER=$ROOT_USER
MINIO_ROOT_PASSWORD=$ROOT_PASSWORD
MINIO_KMS_KES_ENDPOINT=$ENDPOINTS
MINIO_KMS_KES_CERT_FILE=$P/minio-kes.cert
MINIO_KMS_KES_KEY_FILE=$P/minio-kes.key
MINIO_KMS_KES_CAPATH=$P/cas
MINIO_KMS_KES_KEY_NAME=$DEFAULT_KEY
EOF
export KES_API_KEY=$ADMIN_API_KEY
export KES_SERVER=$ENDPOINTS
export MINIO_KMS_KES_CAPATH=$P/cas

# keystores_reachable: every node answers `keyraft status` and none reports
# its keystore unreachable.
keystores_reachable() {
	local st
	st=$(keyraft status --json --server "$ENDPOINTS") || return 1
	[ "$(grep -c . <<<"$st")" -eq 3 ] && ! grep -q '"keystore_unreachable":true' <<<"$st" ||
		{ echo "$st"; return 1; }
}

for n in 1 2 3; do
	e2e_start "node$n" env MINIO_IDENTITY_HASH="$MINIO_IDENTITY_HASH" keyraft server --auth=off --config="$P/node$n.yaml"
	e2e_must "keyraft node $n answers" e2e_wait "node$n" 60 keyraft status --server "https://127.0.0.1:${API[n]}"
done
e2e_must "keyraft cluster status: three voters and a leader" \
	e2e_wait - 60 e2e_keyraft_formed "https://127.0.0.1:${API[1]}" 3
e2e_check "every node reaches its keystore (kumo)" keystores_reachable

e2e_start minio env -i PATH="$PATH" HOME="$W/home" MINIO_CONFIG_ENV_FILE="$P/minio.env" \
	"$MINIO_BIN" server "$P/minio-data" --address "127.0.0.1:$MINIO_PORT" \
	--console-address "127.0.0.1:$CONSOLE_PORT" --certs-dir "$W/minio-certs"
e2e_must "minio server starts with three KMS endpoints" \
	e2e_wait minio 120 e2e_http_ok "$MINIO_PORT" /minio/health/ready
e2e_must "mc alias set local" mc alias set local "http://127.0.0.1:$MINIO_PORT" "$ROOT_USER" "$ROOT_PASSWORD"

# Three buckets, each with its own SSE-KMS key: one made with `keyraft key
# create` (the guide's step 5), two with `mc admin kms key create`.
BUCKETS=(outage-a outage-b outage-c)
e2e_must "keyraft key create outage-key-a" keyraft key create --server "https://127.0.0.1:${API[3]}" outage-key-a
e2e_must "mc admin kms key create local outage-key-b" mc admin kms key create local outage-key-b
e2e_must "mc admin kms key create local outage-key-c" mc admin kms key create local outage-key-c
# OBJECTS: "<bucket>/<object>|<local file>" of the objects uploaded before the
# outages; the load loop reads them.
OBJECTS=()
head -c 1M /dev/urandom >"$W/files/1mib.bin"
for b in a b c; do
	for i in 1 2 3; do
		echo "object $i of bucket outage-$b, $(date -u +%FT%TZ) $RANDOM" >"$W/files/outage-$b-$i.txt"
		OBJECTS+=("outage-$b/object-$i.txt|$W/files/outage-$b-$i.txt")
	done
	OBJECTS+=("outage-$b/1mib.bin|$W/files/1mib.bin")
done
# upload_existing: buckets with default SSE-KMS, then every object.
upload_existing() {
	local b entry
	for b in a b c; do
		mc mb "local/outage-$b" && mc encrypt set sse-kms "outage-key-$b" "local/outage-$b" || return 1
	done
	for entry in "${OBJECTS[@]}"; do
		mc cp -q "${entry#*|}" "local/${entry%%|*}" || return 1
	done
}
e2e_must "3 buckets with SSE-KMS (outage-key-a/b/c), ${#OBJECTS[@]} objects uploaded" upload_existing

# sse_kms_with <bucket/object> <key>: mc stat shows SSE-KMS with <key>.
sse_kms_with() {
	local json
	json=$(mc stat --json "local/$1") || return 1
	grep -q '"X-Amz-Server-Side-Encryption":"aws:kms"' <<<"$json" &&
		grep -q "\"X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id\":\"arn:aws:kms:$2\"" <<<"$json" ||
		{ echo "$json"; return 1; }
}
for b in a b c; do
	e2e_check "mc stat: outage-$b/object-1.txt is SSE-KMS with outage-key-$b" \
		sse_kms_with "outage-$b/object-1.txt" "outage-key-$b"
done
cd "$W"

# ---------------------------------------------------------------------------
# The load loop and the outage scenarios.

# first_error <file>: the most telling line of a failed command's output.
first_error() {
	local line
	line=$(grep -m 1 -E 'ERROR|rror|failed|denied' "$1" 2>/dev/null) || line=$(tail -n 1 "$1" 2>/dev/null)
	line=${line//$'\r'/}
	echo "${line:0:200}"
}

# load_loop <scenario> <op log> <stop file>: until <stop file> exists, every
# $LOOP_INTERVAL s alternately GETs an existing object (compared with its
# source) and PUTs a new object into one of the SSE-KMS buckets. Appends one
# line per operation to <op log>:
#   <start ms> <end ms> <GET|PUT> <ok|fail> <bucket/object> [<error>]
load_loop() {
	set +e
	local sc=$1 oplog=$2 stop=$3 i=0 op target file t0 t1 rc res err
	local tmp=$W/load-$sc n=${#OBJECTS[@]}
	mkdir -p "$tmp"
	while [ ! -e "$stop" ]; do
		i=$((i + 1))
		t0=$(e2e_now_ms)
		if [ $((i % 2)) -eq 1 ]; then
			op=GET
			target=${OBJECTS[$(((i / 2) % n))]}
			file=${target#*|}
			target=${target%%|*}
			rm -f "$tmp/get"
			timeout "$OP_TIMEOUT" "$MC_BIN" cp -q "local/$target" "$tmp/get" >"$tmp/out" 2>&1
			rc=$?
			if [ "$rc" -eq 0 ] && ! cmp -s "$file" "$tmp/get"; then
				echo "downloaded object differs from its source" >"$tmp/out"
				rc=1
			fi
		else
			op=PUT
			target=${BUCKETS[$(((i / 2) % ${#BUCKETS[@]}))]}/load-$sc-$i.txt
			echo "keyraft outage e2e: $sc $i" >"$tmp/put"
			timeout "$OP_TIMEOUT" "$MC_BIN" cp -q "$tmp/put" "local/$target" >"$tmp/out" 2>&1
			rc=$?
		fi
		t1=$(e2e_now_ms)
		res=ok
		err=""
		if [ "$rc" -ne 0 ]; then
			res=fail
			if [ "$rc" -eq 124 ]; then
				err="no answer within ${OP_TIMEOUT}s"
			else
				err=$(first_error "$tmp/out")
			fi
		fi
		echo "$t0 $t1 $op $res $target $err" >>"$oplog"
		sleep "$LOOP_INTERVAL"
	done
}

# stopped <name>: the process or loop <name> has ended.
stopped() {
	! e2e_alive "$1"
}

# sleep_until <ms>: sleeps until the wall clock reaches <ms>.
sleep_until() {
	local left=$(($1 - $(e2e_now_ms)))
	[ "$left" -le 0 ] || sleep "$(e2e_secs "$left")"
}

# at: the time since AWS went away, "+12.3s".
at() {
	echo "+$(e2e_secs $(($(e2e_now_ms) - T_DOWN)))s"
}

# try_create <name> <timeout s>: one `mc admin kms key create`; sets
# CREATE_RC, CREATE_T0, CREATE_T1 and CREATE_ERR.
try_create() {
	CREATE_T0=$(e2e_now_ms)
	CREATE_RC=0
	timeout "$2" "$MC_BIN" admin kms key create local "$1" >"$W/create.out" 2>&1 || CREATE_RC=$?
	CREATE_T1=$(e2e_now_ms)
	CREATE_ERR=""
	if [ "$CREATE_RC" -eq 124 ]; then
		CREATE_ERR="no answer within $2 s"
	elif [ "$CREATE_RC" -ne 0 ]; then
		CREATE_ERR=$(first_error "$W/create.out")
	fi
}

# AWS going away and coming back, per scenario. aws_<sc>_end sets T_UP: the
# moment AWS answers again (kumo restarted and answering; SIGCONT sent).
aws_down_begin() {
	e2e_stop kumo
	echo "    $(at) kumo stopped (SIGTERM): AWS refuses connections"
}
aws_down_end() {
	local t0
	t0=$(e2e_now_ms)
	e2e_start kumo env -i PATH="$PATH" HOME="$W/home" KUMO_HOST=127.0.0.1 KUMO_PORT="$KUMO_PORT" \
		KUMO_DATA_DIR="$P/kumo-data" KUMO_PERSIST_FLUSH_INTERVAL_MS=100 KUMO_LOG_LEVEL=warn "$KUMO_BIN"
	e2e_wait kumo 30 e2e_kumo_ok "$KUMO_PORT" || return 1
	T_UP=$(e2e_now_ms)
	echo "    $(at) kumo restarted on the same port and data dir, answering after $(e2e_secs $((T_UP - t0)))s"
}
aws_hung_begin() {
	KUMO_FROZEN=${E2E_PID[kumo]}
	kill -STOP "$KUMO_FROZEN"
	echo "    $(at) kumo frozen (SIGSTOP, pid $KUMO_FROZEN): AWS accepts connections, never answers"
}
aws_hung_end() {
	resume_kumo
	T_UP=$(e2e_now_ms)
	echo "    $(at) kumo resumed (SIGCONT)"
	e2e_wait kumo 10 e2e_kumo_ok "$KUMO_PORT" || return 1
}

# analyze <op log>: counts per operation and period (before/during/after the
# outage), the slowest operation during the outage, and the recovery point:
# sets GET_<PERIOD>_OK/FAIL, PUT_<PERIOD>_OK/FAIL, GET_MAX_MS, PUT_MAX_MS,
# SLOW_DURING (operations during the outage that took over 1 s), FAILS (all
# failures) and LOOP_GREEN_MS (from T_UP to the first success
# after the last failure; 0 if nothing failed after AWS returned; -1 if
# nothing succeeded after the last failure).
analyze() {
	eval "$(awk -v down="$T_DOWN" -v up="$T_UP" '
		{
			p = ($1 < down) ? "BEFORE" : (($1 < up) ? "DURING" : "AFTER")
			n[$3 "_" p "_" ($4 == "ok" ? "OK" : "FAIL")]++
			if (p == "DURING" && $2 - $1 > max[$3]) max[$3] = $2 - $1
			if (p == "DURING" && $2 - $1 > 1000) slow++
			if ($4 == "fail") { fails++; lastfail = $2; green = -1 }
			else if (green == -1 && $1 >= lastfail) green = $1
		}
		END {
			split("GET PUT", ops, " "); split("BEFORE DURING AFTER", ps, " ")
			for (o in ops) for (q in ps) for (r = 0; r < 2; r++) {
				k = ops[o] "_" ps[q] "_" (r ? "FAIL" : "OK")
				printf "%s=%d\n", k, n[k]
			}
			printf "GET_MAX_MS=%d\nPUT_MAX_MS=%d\nFAILS=%d\nSLOW_DURING=%d\n", max["GET"], max["PUT"], fails, slow
			if (fails == 0 || lastfail < up) g = 0
			else if (green == -1) g = -1
			else g = (green > up) ? green - up : 0
			printf "LOOP_GREEN_MS=%d\n", g
		}' "$1")"
}

# read_back_load <scenario>: every object the load loop PUT in this scenario
# reads back with its content, and one per bucket is SSE-KMS with the
# bucket's key.
read_back_load() {
	local sc=$1 t0 t1 op res target bad=0 n=0 i b
	local -A sampled=()
	while read -r t0 t1 op res target _; do
		[ "$op" = PUT ] && [ "$res" = ok ] || continue
		n=$((n + 1))
		i=${target##*-}
		i=${i%.txt}
		if [ "$(mc cat "local/$target" </dev/null)" != "keyraft outage e2e: $sc $i" ]; then
			echo "local/$target does not read back"
			bad=$((bad + 1))
		fi
		b=${target%%/*}
		if [ -z "${sampled[$b]:-}" ] && [ "$t0" -ge "$T_DOWN" ]; then
			sampled[$b]=1
			sse_kms_with "$target" "outage-key-${b#outage-}" </dev/null || bad=$((bad + 1))
		fi
	done <"$W/ops-$sc.log"
	echo "$n objects read back, $bad bad"
	[ "$n" -gt 0 ] && [ "$bad" -eq 0 ]
}

# new_key_works <key> <bucket>: a new bucket encrypted with the new key takes
# an object and returns it.
new_key_works() {
	echo "new key $1" >"$W/files/$2.txt"
	mc mb "local/$2" && mc encrypt set sse-kms "$1" "local/$2" &&
		mc cp -q "$W/files/$2.txt" "local/$2/object.txt" &&
		[ "$(mc cat "local/$2/object.txt")" = "new key $1" ] &&
		sse_kms_with "$2/object.txt" "$1"
}

# kumo_has_secrets <name...>: kumo's Secrets Manager lists every named
# secret (Keyraft stores key <name> as secret <name>, as KES does).
kumo_has_secrets() {
	local list name
	list=$(e2e_kumo_call "$KUMO_PORT" secretsmanager.ListSecrets '{"MaxResults":100}') || return 1
	for name in "$@"; do
		grep -q "\"Name\":\"$name\"" <<<"$list" || { echo "no secret $name in: $list"; return 1; }
	done
}

# iso <ms>: the time as keyraft logs it (UTC, milliseconds).
iso() {
	date -u -d "@$(($1 / 1000)).$(printf '%03d' $(($1 % 1000)))" +%FT%T.%3NZ
}

# keystore_lines <from ms> <to ms> [<node number>...]: keyraft's log lines
# about its keystore between the two times, from the nodes (default: all).
keystore_lines() {
	local from to n nodes
	from=$(iso "$1")
	to=$(iso "$2")
	shift 2
	nodes=${*:-1 2 3}
	for n in $nodes; do
		awk -v from="$from" -v to="$to" -v node="node$n" \
			'$1 >= from && $1 <= to && /keystore/ && !/^\{/ { print node ": " substr($0, 1, 260) }' "${E2E_LOG[node$n]}"
	done | sort -t' ' -k2,2
}

# keystore_events <from ms> <to ms>: per node, when keyraft logged its
# keystore offline (relative to T_DOWN) and back online (relative to T_UP),
# from the log lines "keystore is offline" / "keystore is back online".
keystore_events() {
	local n line t off on out=""
	for n in 1 2 3; do
		off=-
		on=-
		while read -r line; do
			t=$(date -u -d "${line%% *}" +%s%3N 2>/dev/null) || continue
			case $line in
			*"keystore is offline"*) [ "$off" != - ] || off="+$(e2e_secs $((t - T_DOWN)))s" ;;
			*"keystore is back online"*)
				if [ "$t" -ge "$T_UP" ]; then
					on="+$(e2e_secs $((t - T_UP)))s"
				else
					on="-$(e2e_secs $((T_UP - t)))s"
				fi
				;;
			esac
		done < <(keystore_lines "$1" "$2" "$n" | sed 's/^node[0-9]: //')
		out+="node$n offline $off, online $on; "
	done
	echo "${out%; }"
}

# mc_kms_key_ok <key>: mc admin kms key status says the key encrypts and
# decrypts (it reports failures in encryptionError/decryptionError).
mc_kms_key_ok() {
	local json
	json=$(mc admin kms key status --json local "$1") || return 1
	grep -q '"status":"success"' <<<"$json" && ! grep -q 'Error' <<<"$json" || { echo "$json"; return 1; }
}

# key_listed_by_minio <key>: mc admin kms key list shows it.
key_listed_by_minio() {
	mc admin kms key list --json local | grep -q "\"$1\""
}

SUMMARY=()

# run_scenario <scenario> <description>
run_scenario() {
	local sc=$1 oplog=$W/ops-$1.log stop=$W/stop-$1 k=0 create_ok_ms=-1 recreated="" fails_after=0 green
	e2e_phase "scenario $sc: $2 for ${OUTAGE}s"
	: >"$oplog"
	e2e_must "$sc: every keyraft node reaches its keystore before the outage" e2e_wait - 30 keystores_reachable
	SC_T0=$(e2e_now_ms)
	e2e_start_fn "load-$sc" load_loop "$sc" "$oplog" "$stop"
	echo "    load loop started (GET/PUT alternately every ${LOOP_INTERVAL}s, each bounded to ${OP_TIMEOUT}s)"
	sleep "$BASELINE"

	T_DOWN=$(e2e_now_ms)
	T_UP=$((T_DOWN + OUTAGE * 1000)) # until aws_<sc>_end says when
	"aws_${sc}_begin"
	sleep_until $((T_DOWN + DOWN_CREATE_AT * 1000))
	echo "    $(at) mc admin kms key create local during-$sc (during the outage; may fail)"
	try_create "during-$sc" "$DOWN_CREATE_TIMEOUT"
	local down_create
	if [ "$CREATE_RC" -eq 0 ]; then
		down_create="succeeded in $(e2e_secs $((CREATE_T1 - CREATE_T0)))s"
	else
		down_create="failed after $(e2e_secs $((CREATE_T1 - CREATE_T0)))s: $CREATE_ERR"
	fi
	echo "    $(at) ... $down_create"
	sleep_until $((T_DOWN + OUTAGE * 1000))

	if ! "aws_${sc}_end"; then
		e2e_fail "$sc: AWS (kumo) did not come back"
		exit 1
	fi
	# A new key, tried every 0.2 s from the moment AWS is back.
	while [ $(($(e2e_now_ms) - T_UP)) -lt $((RECREATE_FOR * 1000)) ]; do
		k=$((k + 1))
		try_create "recovered-$sc-$k" 5
		if [ "$CREATE_RC" -eq 0 ]; then
			create_ok_ms=$((CREATE_T1 - T_UP))
			recreated=recovered-$sc-$k
			break
		fi
		echo "    $(at) mc admin kms key create local recovered-$sc-$k failed: $CREATE_ERR"
		sleep 0.2
	done
	if [ -n "$recreated" ]; then
		echo "    $(at) mc admin kms key create local $recreated succeeded," \
			"$(e2e_secs "$create_ok_ms")s after AWS's return (attempt $k)"
	fi
	sleep_until $((T_UP + AFTER * 1000))
	touch "$stop"
	e2e_wait - $((OP_TIMEOUT + 5)) stopped "load-$sc" || true
	e2e_stop "load-$sc"

	analyze "$oplog"
	if [ "$FAILS" -gt 0 ]; then
		echo "    failed operations (time since AWS went away, duration):"
		awk -v down="$T_DOWN" '$4 == "fail" {
				printf "      %+8.1fs  %5.1fs  %s %s: ", ($1 - down) / 1000, ($2 - $1) / 1000, $3, $5
				for (i = 6; i <= NF; i++) printf "%s ", $i
				printf "\n"
			}' "$oplog" | head -n 20
		fails_after=$(awk -v up="$T_UP" '$4 == "fail" && $2 >= up' "$oplog" | wc -l)
	fi
	local get_fail=$((GET_BEFORE_FAIL + GET_DURING_FAIL + GET_AFTER_FAIL))
	local put_fail=$((PUT_BEFORE_FAIL + PUT_DURING_FAIL + PUT_AFTER_FAIL))
	e2e_check "$sc: no GET of an existing object failed ($((GET_BEFORE_OK + GET_DURING_OK + GET_AFTER_OK)) ok, $get_fail failed)" \
		test "$get_fail" -eq 0
	e2e_check "$sc: no PUT into an existing SSE-KMS bucket failed ($((PUT_BEFORE_OK + PUT_DURING_OK + PUT_AFTER_OK)) ok, $put_fail failed)" \
		test "$put_fail" -eq 0
	if [ -n "$recreated" ]; then
		e2e_check "$sc: a new key is created within ${RECOVERY_MAX}s of AWS's return ($(e2e_secs "$create_ok_ms")s)" \
			test "$create_ok_ms" -le $((RECOVERY_MAX * 1000))
		e2e_check "$sc: the new key $recreated encrypts a new bucket" new_key_works "$recreated" "new-$sc"
	else
		e2e_fail "$sc: no new key could be created within ${RECREATE_FOR}s of AWS's return (last error: $CREATE_ERR)"
	fi
	green=$LOOP_GREEN_MS
	if [ "$green" -ge 0 ] && [ "$create_ok_ms" -ge 0 ]; then
		[ "$create_ok_ms" -le "$green" ] || green=$create_ok_ms
	else
		green=-1
	fi
	if [ "$green" -ge 0 ]; then
		e2e_check "$sc: all green within ${RECOVERY_MAX}s of AWS's return ($(e2e_secs "$green")s)" \
			test "$green" -le $((RECOVERY_MAX * 1000))
	else
		e2e_fail "$sc: never all green after AWS's return"
	fi
	e2e_check "$sc: objects PUT during the scenario read back (SSE-KMS with their bucket's key)" read_back_load "$sc"
	e2e_check "$sc: kumo still holds the secrets of the keys made before the outage" \
		kumo_has_secrets "$DEFAULT_KEY" outage-key-a outage-key-b outage-key-c
	echo "    keyraft's keystore state changes during the scenario (UTC; AWS away $(iso "$T_DOWN") to $(iso "$T_UP")):"
	keystore_lines "$SC_T0" "$(e2e_now_ms)" | sed 's/^/      /'
	local events
	events=$(keystore_events "$SC_T0" "$(e2e_now_ms)")
	local down_listed=no down_usable=no
	key_listed_by_minio "during-$sc" && down_listed=yes
	mc_kms_key_ok "during-$sc" >/dev/null 2>&1 && down_usable=yes

	local to_green="never"
	[ "$green" -lt 0 ] || to_green="$(e2e_secs "$green")s"
	SUMMARY+=(
		""
		"scenario $sc: $2, AWS away $(e2e_secs $((T_UP - T_DOWN)))s ($(iso "$T_DOWN") to $(iso "$T_UP"))"
		"  GET existing objects during outage:   $GET_DURING_OK ok, $GET_DURING_FAIL failed (slowest $(e2e_secs "$GET_MAX_MS")s)"
		"  PUT into existing keys during outage: $PUT_DURING_OK ok, $PUT_DURING_FAIL failed (slowest $(e2e_secs "$PUT_MAX_MS")s)"
		"  GET/PUT before outage:                $((GET_BEFORE_OK + PUT_BEFORE_OK)) ok, $((GET_BEFORE_FAIL + PUT_BEFORE_FAIL)) failed"
		"  GET/PUT after AWS's return:           $((GET_AFTER_OK + PUT_AFTER_OK)) ok, $((GET_AFTER_FAIL + PUT_AFTER_FAIL)) failed ($fails_after failures ended after the return)"
		"  new key during outage (during-$sc): $down_create"
		"    after recovery: listed by mc admin kms key list: $down_listed; mc admin kms key status ok: $down_usable"
		"  GET/PUT during outage slower than 1s: $SLOW_DURING (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
		"  new key after AWS's return:           $([ -n "$recreated" ] && echo "$(e2e_secs "$create_ok_ms")s after the return, attempt $k" || echo "none within ${RECREATE_FOR}s")"
		"  keyraft logged keystore offline (after AWS left) / online (after AWS's return): $events"
		"  AWS return -> all green:              $to_green (loop $([ "$LOOP_GREEN_MS" -ge 0 ] && echo "$(e2e_secs "$LOOP_GREEN_MS")s" || echo never), new key $([ "$create_ok_ms" -ge 0 ] && echo "$(e2e_secs "$create_ok_ms")s" || echo never))"
	)
	cp "$oplog" "$W/logs/ops-$sc.log"
}

for sc in $SCENARIOS; do
	case $sc in
	down) run_scenario down "kumo stopped, then restarted" ;;
	hung) run_scenario hung "kumo frozen (SIGSTOP), then resumed (SIGCONT)" ;;
	esac
done
e2e_phase_end

echo
echo "== outage summary (OUTAGE=${OUTAGE}s, RECOVERY_MAX=${RECOVERY_MAX}s, OP_TIMEOUT=${OP_TIMEOUT}s)"
printf '%s\n' "${SUMMARY[@]}"
if [ "$E2E_FAILS" -ne 0 ]; then
	echo
	echo "== keyraft log lines about the keystore (last 15 per node)"
	for n in 1 2 3; do
		echo "---- node$n"
		grep -iE 'keystore|offline|unreachable|breaker|aws' "${E2E_LOG[node$n]}" | tail -n 15 || true
	done
fi
