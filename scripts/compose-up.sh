#!/usr/bin/env bash
# Start a three-node Keyraft cluster plus the kumo AWS Secrets Manager
# emulator with Docker Compose, in one command:
#
#   scripts/compose-up.sh
#
# 1. builds static binaries (CGO_ENABLED=0) of keyraft (`make build`) and
#    kumo (reusing a static kumo of the same version from
#    $(go env GOPATH)/bin, as .ci/run installs it) into deploy/bin;
# 2. generates, once, an admin and a MinIO API key (deploy/generated/*.key),
#    a certificate per node (deploy/generated/keyraft-N/tls.{crt,key} and
#    the CA bundle ca.crt) and the identities that the shared node config
#    (deploy/kubernetes/config) reads, deploy/generated/identities.env
#    (gitignored; delete it together with the volumes to start afresh);
# 3. runs `docker compose up --build -d` (or docker-compose) and waits until
#    every node answers.
#
# The images are FROM scratch with the binaries copied in: nothing is pulled.
# Stop with `docker compose down` (keeps the state) or `down -v` (drops it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

kumo_version=v0.33.1
bin=deploy/bin
gen=deploy/generated

if docker compose version >/dev/null 2>&1; then
	compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
	compose=(docker-compose)
else
	echo "compose-up: neither 'docker compose' nor 'docker-compose' is available" >&2
	exit 1
fi

echo "== building static binaries into $bin"
mkdir -p "$bin"
# The Makefile's release build: static, version and commit stamped in.
if command -v make >/dev/null; then
	make --no-print-directory build BIN="$bin/keyraft"
else
	CGO_ENABLED=0 go build -trimpath -buildvcs=false -o "$bin/keyraft" \
		-ldflags "-s -w -X main.releaseVersion=$(git describe --tags --always --dirty 2>/dev/null || echo dev) -X main.releaseCommit=$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
		./cmd/keyraft
fi
# kumo: reuse a static binary of the pinned version (.ci/run installs one
# with CGO_ENABLED=0 into $(go env GOPATH)/bin) instead of building it again.
static_kumo() {
	[ -x "$1" ] || return 1
	local info
	info=$(go version -m "$1" 2>/dev/null) || return 1
	grep -q "CGO_ENABLED=0" <<<"$info" &&
		grep -Eq "^[[:space:]]*mod[[:space:]]+github.com/sivchari/kumo[[:space:]]+$kumo_version([[:space:]]|$)" <<<"$info"
}
if ! static_kumo "$bin/kumo"; then
	gobin=$(go env GOBIN)
	[ -n "$gobin" ] || gobin="$(go env GOPATH | cut -d: -f1)/bin"
	if static_kumo "$gobin/kumo"; then
		echo "   reusing $gobin/kumo ($kumo_version, static)"
		cp "$gobin/kumo" "$bin/kumo"
	else
		# go.sum of kumo needs GONOSUMDB for two aws-sdk service modules.
		(cd "${TMPDIR:-/tmp}" && GOBIN="$root/$bin" CGO_ENABLED=0 \
			GONOSUMDB=github.com/aws/aws-sdk-go-v2/service GOFLAGS=-mod=mod \
			go install "github.com/sivchari/kumo/cmd/kumo@$kumo_version")
	fi
fi
keyraft=$root/$bin/keyraft

nodes=(keyraft-0 keyraft-1 keyraft-2)
if [ ! -f "$gen/identities.env" ]; then
	echo "== generating API keys, node certificates and identities in $gen"
	rm -rf "$gen"
	# Only the owner can reach the keys on the host. Inside, the node
	# directories are readable by the containers' unprivileged user, and each
	# container mounts only its own, where a pod mounts its Secret:
	# /etc/keyraft/tls/<node>/{tls.crt,tls.key,ca.crt}.
	mkdir -m 0700 "$gen"
	# api_key <file>: writes a new API key to <file>, prints its identity.
	api_key() {
		local json
		json=$("$keyraft" identity new --json)
		(umask 077 && sed -E 's/.*"api_key":"([^"]+)".*/\1/' <<<"$json" >"$1")
		sed -E 's/.*"identity":"([^"]+)".*/\1/' <<<"$json"
	}
	admin_id=$(api_key "$gen/admin.key")
	minio_id=$(api_key "$gen/minio.key")

	ids=()
	for n in "${nodes[@]}"; do
		mkdir -m 0755 "$gen/$n"
		"$keyraft" identity new "$n" --key "$gen/$n/tls.key" --cert "$gen/$n/tls.crt" \
			--dns "$n.keyraft" --dns "$n" --dns localhost --ip 127.0.0.1 --expiry 8760h >/dev/null
		chmod 0644 "$gen/$n/tls.key" # read by uid 65532 in the container
		ids+=("$("$keyraft" identity of "$gen/$n/tls.crt")")
	done
	# The node certificates are self-signed: every node's CA bundle holds
	# all three, so a joining node verifies the member it asks by name.
	cat "$gen"/keyraft-*/tls.crt >"$gen/ca.crt"
	for n in "${nodes[@]}"; do
		cp "$gen/ca.crt" "$gen/$n/ca.crt"
	done
	cat >"$gen/identities.env" <<EOF
ADMIN_IDENTITY=$admin_id
MINIO_IDENTITY=$minio_id
KEYRAFT_0_IDENTITY=${ids[0]}
KEYRAFT_1_IDENTITY=${ids[1]}
KEYRAFT_2_IDENTITY=${ids[2]}
EOF
fi

echo "== ${compose[*]} up --build -d"
"${compose[@]}" up --build -d

ports=("${KEYRAFT_PORT_0:-7371}" "${KEYRAFT_PORT_1:-7372}" "${KEYRAFT_PORT_2:-7373}")
servers=$(printf 'https://127.0.0.1:%s,' "${ports[@]}")
servers=${servers%,}

echo "== waiting for the three nodes"
deadline=$((SECONDS + 180))
until KES_API_KEY=$(cat "$gen/admin.key") "$keyraft" status --short --ca "$gen/ca.crt" --server "$servers" >/dev/null 2>&1; do
	if [ $SECONDS -ge $deadline ]; then
		echo "compose-up: the cluster did not come up within 180s" >&2
		"${compose[@]}" ps >&2 || true
		"${compose[@]}" logs --tail=50 >&2 || true
		exit 1
	fi
	sleep 1
done
KES_API_KEY=$(cat "$gen/admin.key") "$keyraft" cluster status --ca "$gen/ca.crt" --server "$servers"
cat <<EOF

Keyraft is up. Use it with:

  export KES_SERVER=$servers
  export KES_API_KEY=\$(cat $gen/admin.key)
  export MINIO_KMS_KES_CAPATH=$gen/ca.crt   # or pass --ca $gen/ca.crt
  $bin/keyraft key create my-key
EOF
