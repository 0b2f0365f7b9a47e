#!/usr/bin/env bash
# e2e-minio.sh: MinIO server-side encryption against Keyraft, end to end.
#
# Runs MinIO's "SSE with KES" tutorial as docs/minio.md tells it, with
# `keyraft` in place of `kes` and real `minio` and `mc` binaries, then checks
# what MinIO relies on:
#
#   1. walkthrough   one node, mTLS client certificate for MinIO (the guide);
#   2. api-key       one node, MINIO_KMS_KES_API_KEY instead of certificates;
#   3. cluster       three nodes sharing an fs keystore; MinIO lists all three
#                    endpoints, then is restarted against each node alone and
#                    reads every object back (the nodes share the keys); before
#                    each restart the keys MinIO uses are rotated through that
#                    node, so objects of every key version are read back.
#
# Every phase checks: the default key is created by MinIO at its first start,
# keys made with `keyraft key create` and `mc admin kms key create`, bucket
# default SSE-KMS (`mc encrypt set SSE-KMS`) and SSE-S3, per-object --enc-kms
# and --enc-s3, a 40 MiB multipart upload, `mc stat` shows the scheme and key,
# downloads equal uploads, a missing key is refused, and a MinIO restart reads
# everything back.
#
# Run from the repository root: bash scripts/e2e-minio.sh
# Needs Go and the Go module proxy (to install minio and mc); everything else
# runs on 127.0.0.1 with free ports in a temporary directory removed at exit.
# Every process it starts is stopped by PID at exit. docs/minio.md shows the
# same commands with the default ports; keep the two in sync.
#
# Environment (optional):
#   MINIO_VERSION, MC_VERSION   module versions to install (default: latest;
#       if @latest fails to build, the versions pinned below are installed).
#       A cold install of both took about 3 minutes on 2 cores (minio ~160 s,
#       mc ~30 s).
#   GOBIN   where minio and mc are installed (default: $(go env GOPATH)/bin);
#       existing binaries there are reused.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
# shellcheck source=scripts/lib-e2e.sh
. "$REPO/scripts/lib-e2e.sh"

e2e_init keyraft-e2e-minio
W=$E2E_WORK

DEFAULT_KEY=minio-backend-default-key
ROOT_USER=e2e-root
ROOT_PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
# mc keeps its aliases here, not in ~/.mc.
export MC_CONFIG_DIR="$W/mc"
# No stray KES/MinIO client settings from the caller's environment.
unset KES_SERVER KES_API_KEY KES_CLIENT_CERT KES_CLIENT_KEY KES_ENCLAVE \
	MINIO_KMS_KES_ENDPOINT MINIO_KMS_KES_API_KEY MINIO_KMS_KES_CERT_FILE \
	MINIO_KMS_KES_KEY_FILE MINIO_KMS_KES_CAPATH MINIO_KMS_KES_ENCLAVE 2>/dev/null || true

# ---------------------------------------------------------------------------
e2e_phase "install minio and mc"

BIN_DIR=$(go env GOBIN)
if [ -z "$BIN_DIR" ]; then
	BIN_DIR=$(go env GOPATH)
	BIN_DIR="${BIN_DIR%%:*}/bin"
fi
mkdir -p "$BIN_DIR"

# Known-good versions: what @latest resolved to on 2026-11-29 (MinIO HEAD
# 7aac2a2c5b7c of 2026-02-12, the version docs/minio.md and the MinIO client
# spec were checked against, and mc of 2025-03-13). Both build with Go 1.26.
# They are the fallback if @latest stops building (MinIO's repository may
# move or require a newer Go than the machine has).
MINIO_PINNED=v0.0.0-20260212201848-7aac2a2c5b7c
MC_PINNED=v0.0.0-20250313080218-cf909e1063a9

# install_tool <name> <version> <fallback version>: go install
# github.com/minio/<name>@<version> (else @<fallback>) into $BIN_DIR unless a
# working binary is already there; says what it did in $INSTALLED. MinIO and
# mc are only run, never imported (they are AGPLv3). CGO is off, as in
# MinIO's own release builds, so no C toolchain is needed.
install_tool() {
	local name=$1 version=$2 fallback=$3 t0
	if [ -x "$BIN_DIR/$name" ] && "$BIN_DIR/$name" --version >/dev/null 2>&1; then
		INSTALLED="$BIN_DIR/$name was already installed"
		return 0
	fi
	t0=$(e2e_now_ms)
	if ! (cd "$W" && GOBIN="$BIN_DIR" CGO_ENABLED=0 go install "github.com/minio/$name@$version"); then
		[ "$version" != "$fallback" ] || return 1
		echo "go install github.com/minio/$name@$version failed; trying @$fallback"
		version=$fallback
		(cd "$W" && GOBIN="$BIN_DIR" CGO_ENABLED=0 go install "github.com/minio/$name@$version") || return 1
	fi
	INSTALLED="go install github.com/minio/$name@$version into $BIN_DIR took $(e2e_secs $(($(e2e_now_ms) - t0)))s"
}
INSTALLED=""
e2e_must "minio installed" install_tool minio "${MINIO_VERSION:-latest}" "$MINIO_PINNED"
echo "    $INSTALLED"
e2e_must "mc installed" install_tool mc "${MC_VERSION:-latest}" "$MC_PINNED"
echo "    $INSTALLED"
MINIO_BIN=$BIN_DIR/minio
MC_BIN=$BIN_DIR/mc

# ---------------------------------------------------------------------------
e2e_phase "build keyraft"
mkdir -p "$W/bin"
# Without git (a tarball, a bare machine) go build cannot stamp VCS data.
BUILD_FLAGS=()
command -v git >/dev/null || BUILD_FLAGS+=(-buildvcs=false)
e2e_must "go build ./cmd/keyraft" go build "${BUILD_FLAGS[@]}" -o "$W/bin/keyraft" ./cmd/keyraft
export PATH="$W/bin:$BIN_DIR:$PATH"

# mc, bounded in time so that a hung MinIO fails the run instead of
# stalling it.
mc() { timeout 180 "$MC_BIN" "$@"; }

# Test data: a text file, 1 MiB and 40 MiB of random bytes. mc uploads files
# above 16 MiB as multipart uploads (40 MiB -> 3 parts).
mkdir -p "$W/files"
echo "hello from the keyraft e2e test $(date -u +%FT%TZ)" >"$W/files/small.txt"
head -c 1M /dev/urandom >"$W/files/1mib.bin"
head -c 40M /dev/urandom >"$W/files/40mib.bin"

# ---------------------------------------------------------------------------
# Helpers shared by the phases.

# The guide's policy for MinIO (its allow list verbatim); the identity comes
# from ${MINIO_IDENTITY_HASH} in the server's environment (Keyraft, like KES,
# substitutes ${VAR} in its config).
# shellcheck disable=SC2016 # ${MINIO_IDENTITY_HASH} is for keyraft to expand
MINIO_POLICY='  minio:
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
    - ${MINIO_IDENTITY_HASH}'

# http_ok <port> <path>: succeeds if GET http://127.0.0.1:<port><path>
# answers 200 (bash's /dev/tcp: no curl needed).
http_ok() {
	# shellcheck disable=SC2016 # $1 and $2 belong to the inner bash
	timeout 5 bash -c '{ printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" "$2" >&3; head -n 1 <&3; } 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" "$2" 2>/dev/null |
		grep -q '^HTTP/1\.[01] 200'
}

# start_keyraft <name> <config> <identity hash> <status args...>: starts a
# node and waits until `keyraft status <status args>` gets an answer.
start_keyraft() {
	local name=$1 config=$2 id=$3
	shift 3
	e2e_start "$name" env MINIO_IDENTITY_HASH="$id" keyraft server --auth=off --config="$config"
	e2e_wait "$name" 60 keyraft status "$@"
}

# start_minio <name> <env file> <data dir> <port> <console port>: starts
# MinIO with only the env file's settings (a clean environment) and waits
# until /minio/health/ready answers 200.
start_minio() {
	local name=$1 envfile=$2 data=$3 port=$4 cport=$5
	mkdir -p "$W/home" "$W/minio-certs"
	e2e_start "$name" env -i PATH="$PATH" HOME="$W/home" MINIO_CONFIG_ENV_FILE="$envfile" \
		"$MINIO_BIN" server "$data" --address "127.0.0.1:$port" \
		--console-address "127.0.0.1:$cport" --certs-dir "$W/minio-certs"
	e2e_wait "$name" 120 http_ok "$port" /minio/health/ready
}

# Every uploaded object is listed in $MANIFEST as
#   <bucket/object>|<local file>|<SSE-KMS or SSE-S3>|<key name or ->
# so that read_back can fetch and compare all of them after each restart.
MANIFEST=""

# upload <bucket/object> <file> <scheme> <key> [mc cp flags...]
upload() {
	local obj=$1 file=$2 scheme=$3 key=$4
	shift 4
	mc cp -q "$@" "$file" "local/$obj" || return 1
	echo "$obj|$file|$scheme|$key" >>"$MANIFEST"
}

# upload_files <bucket> <scheme> <key> <name...>: uploads $W/files/<name>
# as <bucket>/<name> (encrypted by the bucket's default).
upload_files() {
	local bucket=$1 scheme=$2 key=$3 name
	shift 3
	for name in "$@"; do
		upload "$bucket/$name" "$W/files/$name" "$scheme" "$key" || return 1
	done
}

# stat_shows <bucket/object> <scheme> <key>: mc stat reports the object's
# encryption as <scheme> with <key> (SSE-KMS) and the KMS key id header.
stat_shows() {
	local obj=$1 scheme=$2 key=$3 text json
	text=$(mc stat "local/$obj") || return 1
	json=$(mc stat --json "local/$obj") || return 1
	case $scheme in
	SSE-KMS)
		grep -q "Encryption: *SSE-KMS (arn:aws:kms:$key)" <<<"$text" &&
			grep -q '"X-Amz-Server-Side-Encryption":"aws:kms"' <<<"$json" &&
			grep -q "\"X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id\":\"arn:aws:kms:$key\"" <<<"$json" && return 0
		;;
	SSE-S3)
		grep -q "Encryption: *SSE-S3" <<<"$text" &&
			grep -q '"X-Amz-Server-Side-Encryption":"AES256"' <<<"$json" &&
			! grep -q 'Aws-Kms-Key-Id' <<<"$json" && return 0
		;;
	esac
	echo "mc stat local/$obj does not show $scheme $key:"
	echo "$text"
	echo "$json"
	return 1
}

# read_back: downloads every object in $MANIFEST, compares it with the
# uploaded file and checks its encryption with mc stat.
read_back() {
	local obj file scheme key n=0 bad=0
	rm -rf "$W/download"
	mkdir -p "$W/download"
	while IFS='|' read -r obj file scheme key; do
		n=$((n + 1))
		if ! mc cp -q "local/$obj" "$W/download/$n" >/dev/null; then
			echo "download of $obj failed"
			bad=$((bad + 1))
		elif ! cmp -s "$file" "$W/download/$n"; then
			echo "download of $obj differs from $file"
			bad=$((bad + 1))
		elif ! stat_shows "$obj" "$scheme" "$key"; then
			bad=$((bad + 1))
		fi
	done <"$MANIFEST"
	rm -rf "$W/download"
	echo "$n objects read, $bad bad"
	[ "$n" -gt 0 ] && [ "$bad" -eq 0 ]
}

# key_listed <name> <keyraft key ls args...>: keyraft lists the key.
key_listed() {
	local name=$1 names
	shift
	names=$(keyraft key ls "$@") || return 1
	grep -q "\"$name\"" <<<"$names" || { echo "$names"; return 1; }
}

# key_absent <name> <keyraft key ls args...>: keyraft answers the listing
# and the key is not in it.
key_absent() {
	local name=$1 names
	shift
	names=$(keyraft key ls "$@") || return 1
	! grep -q "\"$name\"" <<<"$names" || { echo "$names"; return 1; }
}

# multipart <bucket/object>: the object's ETag has the "-<parts>" suffix of
# a multipart upload.
multipart() {
	mc stat --json "local/$1" | grep -q '"etag":"[0-9a-f]*-[0-9]*"'
}

# encrypt_info <bucket> <algorithm> [key]: the bucket's default encryption.
encrypt_info() {
	local json
	json=$(mc encrypt info --json "local/$1") || return 1
	grep -q "\"algorithm\":\"$2\"" <<<"$json" || { echo "$json"; return 1; }
	[ -z "${3:-}" ] || grep -q "\"keyId\":\"$3\"" <<<"$json" || { echo "$json"; return 1; }
}

# mc_kms_keys <name...>: mc admin kms key list shows every named key.
mc_kms_keys() {
	local json name
	json=$(mc admin kms key list --json local) || return 1
	for name in "$@"; do
		grep -q "\"$name\"" <<<"$json" || { echo "no $name in: $json"; return 1; }
	done
}

# mc_kms_key_ok <name>: mc admin kms key status says the key encrypts and
# decrypts (it reports failures in encryptionError/decryptionError).
mc_kms_key_ok() {
	local json
	json=$(mc admin kms key status --json local "$1") || return 1
	if grep -q '"status":"success"' <<<"$json" && ! grep -q 'Error' <<<"$json"; then
		return 0
	fi
	echo "$json"
	return 1
}

# kms_online <n>: mc admin info lists <n> distinct KMS endpoints, all online.
kms_online() {
	local json online
	json=$(mc admin info --json local) || return 1
	online=$(grep -o '"status":"online","endpoint":"[^"]*"' <<<"$json" | sort -u | wc -l)
	if [ "$online" -eq "$1" ] && ! grep -q '"status":"offline"' <<<"$json"; then
		return 0
	fi
	echo "$json"
	return 1
}

# sse_workload <bucket key> <object key> <keyraft key ls args...>: the
# object checks every phase runs against MinIO (alias "local"). The bucket
# key and the object key must exist already.
sse_workload() {
	local bkey=$1 okey=$2
	shift 2
	local f=$W/files
	# SSE-KMS as the bucket default (the guide's step 6).
	e2e_check "mc mb local/encryptedbucket" mc mb local/encryptedbucket
	e2e_check "mc encrypt set SSE-KMS $bkey local/encryptedbucket" \
		mc encrypt set SSE-KMS "$bkey" local/encryptedbucket
	e2e_check "mc encrypt info: sse-kms with $bkey" encrypt_info encryptedbucket aws:kms "$bkey"
	e2e_check "upload to the SSE-KMS bucket (text, 1 MiB, 40 MiB)" \
		upload_files encryptedbucket SSE-KMS "$bkey" small.txt 1mib.bin 40mib.bin
	e2e_check "the 40 MiB upload was a multipart upload" multipart encryptedbucket/40mib.bin
	e2e_check "mc stat shows SSE-KMS with $bkey" stat_shows encryptedbucket/small.txt SSE-KMS "$bkey"

	# SSE-S3 as the bucket default: MinIO's default key.
	e2e_check "mc mb local/s3bucket" mc mb local/s3bucket
	e2e_check "mc encrypt set sse-s3 local/s3bucket" mc encrypt set sse-s3 local/s3bucket
	e2e_check "mc encrypt info: sse-s3" encrypt_info s3bucket AES256
	e2e_check "upload to the SSE-S3 bucket (text, 40 MiB)" \
		upload_files s3bucket SSE-S3 - small.txt 40mib.bin
	e2e_check "the 40 MiB upload was a multipart upload" multipart s3bucket/40mib.bin
	e2e_check "mc stat shows SSE-S3" stat_shows s3bucket/small.txt SSE-S3 -

	# Per-object encryption on a bucket without a default.
	e2e_check "mc mb local/plainbucket" mc mb local/plainbucket
	e2e_check "mc cp --enc-s3" upload plainbucket/enc-s3.txt "$f/small.txt" SSE-S3 - \
		--enc-s3 local/plainbucket/enc-s3.txt
	e2e_check "mc cp --enc-kms (key $okey)" upload plainbucket/enc-kms.bin "$f/1mib.bin" SSE-KMS "$okey" \
		--enc-kms "local/plainbucket/enc-kms.bin=$okey"
	e2e_check "mc stat shows SSE-KMS with $okey" stat_shows plainbucket/enc-kms.bin SSE-KMS "$okey"

	# A key that does not exist is refused, and not created on the way.
	e2e_check_fails "upload with a missing SSE-KMS key is refused" "key .*does not exist" \
		mc cp -q --enc-kms "local/plainbucket/refused.txt=missing-key" "$f/small.txt" local/plainbucket/refused.txt
	e2e_check_fails "the refused object was not stored" "Object does not exist" mc stat local/plainbucket/refused.txt
	e2e_check_fails "mc encrypt set sse-kms with a missing key is refused" "key .*does not exist" \
		mc encrypt set sse-kms missing-key local/plainbucket
	e2e_check "keyraft did not create the missing key" key_absent missing-key "$@"

	e2e_check "downloads equal uploads, mc stat shows each object's encryption" read_back
}

# ---------------------------------------------------------------------------
e2e_phase "walkthrough: one node, MinIO with a client certificate"
# docs/minio.md's walkthrough, step by step. $OPT and $ETC stand for /opt
# and /etc in the document; the ports are free ones instead of 7373 (KES),
# 7374 (Raft), 9000 (MinIO) and 9001 (console).
P=$W/walkthrough
OPT=$P/opt
ETC=$P/etc
mkdir -p "$OPT/kes/certs" "$OPT/minio/certs" "$ETC/default" "$P/mnt/data"
MANIFEST=$P/objects
: >"$MANIFEST"
e2e_port KES_PORT
e2e_port RAFT_PORT
e2e_port MINIO_PORT
e2e_port CONSOLE_PORT
cd "$P"

# 2) certificates for Keyraft (the KES server) and MinIO.
e2e_must "keyraft identity new kes_server" \
	keyraft identity new kes_server --key "$OPT/kes/certs/kes-server.key" \
	--cert "$OPT/kes/certs/kes-server.cert" --ip 127.0.0.1 --dns localhost
e2e_must "keyraft identity new minio_server" \
	keyraft identity new minio_server --key "$OPT/minio/certs/minio-kes.key" \
	--cert "$OPT/minio/certs/minio-kes.cert" --ip 127.0.0.1 --dns localhost
MINIO_IDENTITY_HASH=$(keyraft identity of "$OPT/minio/certs/minio-kes.cert")
e2e_must "keyraft identity of minio-kes.cert is a hex identity" \
	grep -Eqx '[0-9a-f]{64}' <<<"$MINIO_IDENTITY_HASH"

# 3) the guide's server configuration with the fs keystore instead of AWS,
# and the MinIO environment file.
cat >"$OPT/kes/config.yaml" <<EOC
address: 127.0.0.1:$KES_PORT
root: disabled
tls:
  key: $OPT/kes/certs/kes-server.key
  cert: $OPT/kes/certs/kes-server.cert
policy:
$MINIO_POLICY
keystore:
  fs:
    path: $OPT/kes/keys
cluster:
  node_id: kes-1
  data_dir: $OPT/kes/data
  raft_address: 127.0.0.1:$RAFT_PORT
EOC
cat >"$ETC/default/minio" <<EOC
MINIO_ROOT_USER=$ROOT_USER
MINIO_ROOT_PASSWORD=$ROOT_PASSWORD
MINIO_KMS_KES_ENDPOINT=https://127.0.0.1:$KES_PORT
MINIO_KMS_KES_CERT_FILE=$OPT/minio/certs/minio-kes.cert
MINIO_KMS_KES_KEY_FILE=$OPT/minio/certs/minio-kes.key
MINIO_KMS_KES_CAPATH=$OPT/kes/certs/kes-server.cert
MINIO_KMS_KES_KEY_NAME=$DEFAULT_KEY
EOC

# 4) start Keyraft, check it with keyraft status, then start MinIO.
export KES_SERVER=https://127.0.0.1:$KES_PORT
export KES_CLIENT_KEY=$OPT/minio/certs/minio-kes.key
export KES_CLIENT_CERT=$OPT/minio/certs/minio-kes.cert
e2e_must "keyraft server --auth=off --config=config.yaml; keyraft status answers" \
	start_keyraft kes "$OPT/kes/config.yaml" "$MINIO_IDENTITY_HASH" --ca "$OPT/kes/certs/kes-server.cert"
e2e_must "minio server starts with MINIO_KMS_KES_* (certificate files)" \
	start_minio minio-1 "$ETC/default/minio" "$P/mnt/data" "$MINIO_PORT" "$CONSOLE_PORT"
e2e_check "MinIO created $DEFAULT_KEY at its first start (keyraft key ls -k)" \
	key_listed "$DEFAULT_KEY" -k

# 5) a new key: the guide's `kes key create -k` (-k: do not verify the
# server certificate, which is self-signed here).
e2e_check "keyraft key create -k encrypted-bucket-key" keyraft key create -k encrypted-bucket-key
e2e_check_fails "keyraft key create of an existing key is refused" "key already exists" \
	keyraft key create --ca "$OPT/kes/certs/kes-server.cert" encrypted-bucket-key
e2e_must "mc alias set local" mc alias set local "http://127.0.0.1:$MINIO_PORT" "$ROOT_USER" "$ROOT_PASSWORD"
e2e_check "mc admin kms key create local minio-created-key" mc admin kms key create local minio-created-key
e2e_check "keyraft key ls --ca kes-server.cert shows the key MinIO created" \
	key_listed minio-created-key --ca "$OPT/kes/certs/kes-server.cert"
e2e_check "mc admin kms key list shows all three keys" \
	mc_kms_keys encrypted-bucket-key minio-created-key "$DEFAULT_KEY"
e2e_check "mc admin kms key status local encrypted-bucket-key" mc_kms_key_ok encrypted-bucket-key

# 6) SSE-KMS for a bucket, SSE-S3, uploads, downloads, refusals.
sse_workload encrypted-bucket-key minio-created-key -k

e2e_stop minio-1
e2e_must "minio starts again" start_minio minio-1 "$ETC/default/minio" "$P/mnt/data" "$MINIO_PORT" "$CONSOLE_PORT"
e2e_check "after the MinIO restart: every object reads back" read_back
e2e_stop minio-1
e2e_stop kes
cd "$W"
unset KES_SERVER KES_CLIENT_KEY KES_CLIENT_CERT

# ---------------------------------------------------------------------------
e2e_phase "api-key: one node, MinIO with MINIO_KMS_KES_API_KEY"
P=$W/api-key
mkdir -p "$P"
MANIFEST=$P/objects
: >"$MANIFEST"
e2e_port KES_PORT
e2e_port RAFT_PORT
e2e_port MINIO_PORT
e2e_port CONSOLE_PORT
cd "$P"

e2e_must "keyraft identity new kes_server" \
	keyraft identity new kes_server --key kes-server.key --cert kes-server.cert --ip 127.0.0.1 --dns localhost
# `keyraft identity new` without --key/--cert: an API key (JSON when not on
# a terminal) whose identity goes into the minio policy.
MINIO_API_KEY=$(keyraft identity new --json | sed -n 's/.*"api_key":"\([^"]*\)".*/\1/p')
MINIO_IDENTITY_HASH=$(keyraft identity of "$MINIO_API_KEY")
e2e_must "keyraft identity new: a kes:v1 API key" grep -q '^kes:v1:' <<<"$MINIO_API_KEY"
e2e_must "keyraft identity of <API key> is a hex identity" grep -Eqx '[0-9a-f]{64}' <<<"$MINIO_IDENTITY_HASH"
cat >"$P/config.yaml" <<EOF
address: 127.0.0.1:$KES_PORT
root: disabled
tls:
  key: $P/kes-server.key
  cert: $P/kes-server.cert
policy:
$MINIO_POLICY
keystore:
  fs:
    path: $P/keys
cluster:
  node_id: kes-1
  data_dir: $P/keyraft-data
  raft_address: 127.0.0.1:$RAFT_PORT
EOF
cat >"$P/minio.env" <<EOF
MINIO_ROOT_USER=$ROOT_USER
MINIO_ROOT_PASSWORD=$ROOT_PASSWORD
MINIO_KMS_KES_ENDPOINT=https://127.0.0.1:$KES_PORT
MINIO_KMS_KES_API_KEY=$MINIO_API_KEY
MINIO_KMS_KES_CAPATH=$P/kes-server.cert
MINIO_KMS_KES_KEY_NAME=$DEFAULT_KEY
EOF
export KES_SERVER=https://127.0.0.1:$KES_PORT
export KES_API_KEY=$MINIO_API_KEY
e2e_must "keyraft server answers" start_keyraft kes "$P/config.yaml" "$MINIO_IDENTITY_HASH" --ca "$P/kes-server.cert"
e2e_must "minio server starts with MINIO_KMS_KES_API_KEY" \
	start_minio minio-2 "$P/minio.env" "$P/minio-data" "$MINIO_PORT" "$CONSOLE_PORT"
e2e_check "MinIO created $DEFAULT_KEY at its first start" key_listed "$DEFAULT_KEY" --ca "$P/kes-server.cert"
e2e_check "keyraft key create (KES_API_KEY) api-bucket-key" keyraft key create --ca "$P/kes-server.cert" api-bucket-key
e2e_must "mc alias set local" mc alias set local "http://127.0.0.1:$MINIO_PORT" "$ROOT_USER" "$ROOT_PASSWORD"
e2e_check "mc admin kms key create local api-object-key" mc admin kms key create local api-object-key
sse_workload api-bucket-key api-object-key --ca "$P/kes-server.cert"
e2e_stop minio-2
e2e_must "minio starts again" start_minio minio-2 "$P/minio.env" "$P/minio-data" "$MINIO_PORT" "$CONSOLE_PORT"
e2e_check "after the MinIO restart: every object reads back" read_back
e2e_stop minio-2
e2e_stop kes
cd "$W"
unset KES_SERVER KES_API_KEY

# ---------------------------------------------------------------------------
e2e_phase "cluster: three nodes, MinIO with all endpoints, then each alone"
P=$W/cluster
mkdir -p "$P/cas"
MANIFEST=$P/objects
: >"$MANIFEST"
e2e_port MINIO_PORT
e2e_port CONSOLE_PORT
cd "$P"

declare -a API RAFT NODE_ID
e2e_cluster_identities

# Same policies and keystore on every node; node 1 bootstraps, nodes 2 and 3
# join through it, authorized by the cluster-nodes policy.
for n in 1 2 3; do
	join=""
	[ "$n" -eq 1 ] || join="  join: [https://127.0.0.1:${API[1]}]"
	cat >"$P/node$n.yaml" <<EOF
address: 127.0.0.1:${API[n]}
admin:
  identity: $ADMIN_ID
tls:
  key: $P/node$n.key
  cert: $P/node$n.cert
policy:
$MINIO_POLICY
  cluster-nodes:
    allow: [/v1/cluster/join]
    identities: [${NODE_ID[2]}, ${NODE_ID[3]}]
keystore:
  fs:
    path: $P/keys
cluster:
  node_id: node$n
  data_dir: $P/data/node$n
  raft_address: 127.0.0.1:${RAFT[n]}
$join
EOF
done
minio_env() { # minio_env <endpoints>
	cat >"$P/minio.env" <<EOF
MINIO_ROOT_USER=$ROOT_USER
MINIO_ROOT_PASSWORD=$ROOT_PASSWORD
MINIO_KMS_KES_ENDPOINT=$1
MINIO_KMS_KES_CERT_FILE=$P/minio-kes.cert
MINIO_KMS_KES_KEY_FILE=$P/minio-kes.key
MINIO_KMS_KES_CAPATH=$P/cas
MINIO_KMS_KES_KEY_NAME=$DEFAULT_KEY
EOF
}
export KES_API_KEY=$ADMIN_API_KEY
export KES_SERVER=$ENDPOINTS
export MINIO_KMS_KES_CAPATH=$P/cas

# cluster_formed: node 1 reports three voters, a leader, no member errors.
cluster_formed() {
	local st
	st=$(keyraft cluster status --json --server "https://127.0.0.1:${API[1]}") || return 1
	[ "$(grep -o '"voter":true' <<<"$st" | wc -l)" -eq 3 ] &&
		grep -q '"leader":"node[123]"' <<<"$st" && ! grep -q '"error"' <<<"$st"
}
e2e_must "node 1 bootstraps" start_keyraft node1 "$P/node1.yaml" "$MINIO_IDENTITY_HASH" --server "https://127.0.0.1:${API[1]}"
e2e_start node2 env MINIO_IDENTITY_HASH="$MINIO_IDENTITY_HASH" keyraft server --auth=off --config="$P/node2.yaml"
e2e_start node3 env MINIO_IDENTITY_HASH="$MINIO_IDENTITY_HASH" keyraft server --auth=off --config="$P/node3.yaml"
e2e_must "node 2 joins and answers" e2e_wait node2 60 keyraft status --server "https://127.0.0.1:${API[2]}"
e2e_must "node 3 joins and answers" e2e_wait node3 60 keyraft status --server "https://127.0.0.1:${API[3]}"
e2e_must "keyraft cluster status: three voters and a leader" e2e_wait - 60 cluster_formed

minio_env "$ENDPOINTS"
e2e_must "minio server starts with three endpoints" \
	start_minio minio-3 "$P/minio.env" "$P/minio-data" "$MINIO_PORT" "$CONSOLE_PORT"
e2e_must "mc alias set local" mc alias set local "http://127.0.0.1:$MINIO_PORT" "$ROOT_USER" "$ROOT_PASSWORD"
e2e_check "mc admin info: all three KMS endpoints online" kms_online 3
# (A follower may apply the create a moment after the leader answered.)
for n in 1 2 3; do
	e2e_check "node $n lists $DEFAULT_KEY (created by MinIO at start)" \
		e2e_wait - 10 key_listed "$DEFAULT_KEY" --server "https://127.0.0.1:${API[n]}"
done
e2e_check "keyraft key create cluster-bucket-key via node 3" \
	keyraft key create --server "https://127.0.0.1:${API[3]}" cluster-bucket-key
e2e_check "mc admin kms key create local cluster-object-key" mc admin kms key create local cluster-object-key
sse_workload cluster-bucket-key cluster-object-key

# MinIO against each node alone: everything reads back, and an object
# written through this node is read through the next ones. Before each
# round the bucket key and MinIO's default (SSE-S3) key get a new version
# (Keyraft's key rotation) through that node: objects written under every
# earlier version read back, new ones are written under the newest.
# versions <key> <n>: the key has n versions.
versions() { [ "$(keyraft key info "$1" --json | grep -o '"version":[0-9]*' | wc -l)" -eq "$2" ]; }
i=0
for n in 1 2 3 1; do
	i=$((i + 1))
	e2e_check "keyraft key rotate via node $n: cluster-bucket-key and $DEFAULT_KEY get version $((i + 1))" \
		keyraft key rotate --server "https://127.0.0.1:${API[n]}" cluster-bucket-key "$DEFAULT_KEY"
	e2e_check "cluster-bucket-key has $((i + 1)) versions" versions cluster-bucket-key $((i + 1))
	e2e_stop minio-3
	minio_env "https://127.0.0.1:${API[n]}"
	e2e_must "minio starts against node $n alone" \
		start_minio minio-3 "$P/minio.env" "$P/minio-data" "$MINIO_PORT" "$CONSOLE_PORT"
	e2e_check "MinIO on node $n alone: every object reads back" read_back
	e2e_check "MinIO on node $n alone: SSE-KMS upload" \
		upload "encryptedbucket/round$i-node$n.txt" "$W/files/small.txt" SSE-KMS cluster-bucket-key
	e2e_check "MinIO on node $n alone: SSE-S3 upload" \
		upload "s3bucket/round$i-node$n.bin" "$W/files/1mib.bin" SSE-S3 -
done
e2e_stop minio-3
for n in 3 2 1; do
	e2e_stop "node$n"
done
cd "$W"
unset KES_SERVER KES_API_KEY MINIO_KMS_KES_CAPATH

e2e_phase_end
