#!/usr/bin/env bash
# e2e-docs.sh: the documentation's commands, run as written.
#
#   1. operations   docs/operations.md "A three-node cluster": certificates,
#                   configs, start node 1 then 2 and 3, `keyraft cluster
#                   status --ca` (and that it needs --ca), `cluster add` of a
#                   fourth node without a policy, `cluster remove`, a
#                   snapshot save and restore;
#   2. enclaves     docs/enclaves.md against `keyraft server --dev`: a tenant
#                   onboarded, what its MinIO may do, isolation, deletion.
#
# The docs use 10.0.0.N and port 7373; this script uses 127.0.0.1 and free
# ports, in a temporary directory removed at exit, and stops every process
# it starts by PID. docs/minio.md is run by scripts/e2e-minio.sh.
# Run from the repository root: bash scripts/e2e-docs.sh (about 30 s).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
# shellcheck source=scripts/lib-e2e.sh
. "$REPO/scripts/lib-e2e.sh"

e2e_init keyraft-e2e-docs
W=$E2E_WORK
unset KES_SERVER KES_API_KEY KES_CLIENT_CERT KES_CLIENT_KEY KES_ENCLAVE \
	MINIO_KMS_KES_ENDPOINT MINIO_KMS_KES_API_KEY MINIO_KMS_KES_CERT_FILE \
	MINIO_KMS_KES_KEY_FILE MINIO_KMS_KES_CAPATH MINIO_KMS_KES_ENCLAVE 2>/dev/null || true

e2e_phase "build keyraft"
mkdir -p "$W/bin"
BUILD_FLAGS=()
command -v git >/dev/null || BUILD_FLAGS+=(-buildvcs=false)
e2e_must "go build ./cmd/keyraft" go build "${BUILD_FLAGS[@]}" -o "$W/bin/keyraft" ./cmd/keyraft
export PATH="$W/bin:$PATH"

# json_field <field>: the string value of a top-level JSON field on stdin.
json_field() { sed -E "s/.*\"$1\":\"([^\"]*)\".*/\\1/"; }
# output_has <regexp> <command...>: the command succeeds and prints a match.
output_has() {
	local re=$1 out
	shift
	out=$("$@") || { echo "$out"; return 1; }
	grep -Eq "$re" <<<"$out" || { echo "$out"; return 1; }
}
# output_lacks <regexp> <command...>: the command succeeds and prints no match.
output_lacks() {
	local re=$1 out
	shift
	out=$("$@") || { echo "$out"; return 1; }
	! grep -Eq "$re" <<<"$out" || { echo "$out"; return 1; }
}

# ---------------------------------------------------------------------------
e2e_phase "operations: a three-node cluster"
O=$W/ops
mkdir -p "$O" && cd "$O"
declare -A API RAFT
for n in 1 2 3 4; do
	e2e_port "API[$n]"
	e2e_port "RAFT[$n]"
done

# Step 1: certificates, one per node, and the identities to authorize.
step1() {
	local n
	for n in 1 2 3; do
		keyraft identity new "node$n" --key "node$n.key" --cert "node$n.cert" --ip 127.0.0.1 --expiry 8760h || return 1
	done
	NODE2_IDENTITY=$(keyraft identity of node2.cert) && NODE3_IDENTITY=$(keyraft identity of node3.cert)
	export NODE2_IDENTITY NODE3_IDENTITY
	keyraft identity new --json >admin.json && ADMIN_KEY=$(json_field api_key <admin.json) &&
		ADMIN_IDENTITY=$(json_field identity <admin.json)
	export ADMIN_IDENTITY
}
e2e_must "step 1: certificates and identities" step1

# Step 2: a config per node, the same admin, policy and keystore.
write_config() { # <n> [join endpoint]
	local n=$1 join=${2:-}
	cat >"node$n.yaml" <<EOF
address: 127.0.0.1:${API[$n]}
admin:
  identity: \${ADMIN_IDENTITY}
tls:
  key: $O/node$n.key
  cert: $O/node$n.cert
policy:
  cluster-nodes:
    allow: [/v1/cluster/join]
    identities:
    - \${NODE2_IDENTITY}
    - \${NODE3_IDENTITY}
keystore:
  fs:
    path: $O/keys
cluster:
  node_id: node$n
  data_dir: $O/data/node$n
  raft_address: 127.0.0.1:${RAFT[$n]}
EOF
	if [ -n "$join" ]; then
		echo "  join: [$join]" >>"node$n.yaml"
	fi
}
write_config 1
write_config 2 "https://127.0.0.1:${API[1]}"
write_config 3 "https://127.0.0.1:${API[1]}"

# Step 3: start node 1, then nodes 2 and 3.
ready() { keyraft status --short --ca "$O/node$1.cert" --server "https://127.0.0.1:${API[$1]}" -a "$ADMIN_KEY"; }
for n in 1 2 3; do
	e2e_start "node$n" keyraft server --config "$O/node$n.yaml"
	e2e_must "step 3: node$n serves" e2e_wait "node$n" 60 ready "$n"
done

# Step 4: check, with the nodes' certificates as the CA.
export KES_SERVER="https://127.0.0.1:${API[1]}" KES_API_KEY=$ADMIN_KEY
e2e_check_fails "step 4 without --ca: unknown authority" "certificate signed by unknown authority|unknown authority" \
	keyraft cluster status
mkdir -p cas && cp node1.cert node2.cert node3.cert cas/
e2e_check "step 4: keyraft cluster status --ca cas shows three voters and a leader" \
	output_has '"leader":"node[123]".*"id":"node[123]".*"id":"node[123]".*"id":"node[123]"' keyraft cluster status --ca cas --json
e2e_check "step 4: keyraft cluster status -k (a trial)" keyraft cluster status -k

# cluster add: a fourth node authorized by the admin instead of a policy.
add_node4() {
	keyraft identity new node4 --key node4.key --cert node4.cert --ip 127.0.0.1 --expiry 8760h >/dev/null &&
		keyraft cluster add node4 "127.0.0.1:${RAFT[4]}" --node-cert node4.cert --ca cas
}
e2e_check "keyraft cluster add node4 --node-cert node4.cert" add_node4
write_config 4 "https://127.0.0.1:${API[1]}"
e2e_start node4 keyraft server --config "$O/node4.yaml"
cp node4.cert cas/
e2e_check "node4 joins without a policy" e2e_wait node4 60 ready 4
e2e_check "cluster status shows four members" \
	output_has '"id":"node4"' keyraft cluster status --ca cas --json
e2e_check "keyraft cluster remove node4" keyraft cluster remove node4 --ca cas
e2e_check "the removed node answers 503" e2e_wait - 30 \
	output_has "removed" sh -c "keyraft status --short --ca '$O/cas' --server 'https://127.0.0.1:${API[4]}' 2>&1; true"
e2e_stop node4

# Backup and restore.
e2e_check "keyraft key create before-backup" keyraft key create before-backup --ca cas
e2e_check "keyraft cluster snapshot save backup.snap" keyraft cluster snapshot save backup.snap --ca cas
e2e_check "keyraft cluster snapshot restore backup.snap" keyraft cluster snapshot restore backup.snap --ca cas
e2e_check "the key is there after the restore" keyraft key info before-backup --ca cas
for n in 1 2 3; do e2e_stop "node$n"; done
cd "$REPO"

# ---------------------------------------------------------------------------
e2e_phase "enclaves: docs/enclaves.md"
E=$W/enclaves
mkdir -p "$E"
e2e_port DEV
unset KES_API_KEY
export KES_SERVER="https://127.0.0.1:$DEV"
e2e_start dev keyraft server --dev --addr "127.0.0.1:$DEV"
dev_key() { grep -Eo 'API key: +kes:v1:[^ ]+' "$E2E_WORK/logs/dev.log" | awk '{print $3}'; }
e2e_must "keyraft server --dev prints the admin API key" e2e_wait dev 60 dev_key
ADMIN_KEY=$(dev_key)
export KES_API_KEY=$ADMIN_KEY
e2e_must "the dev server answers" e2e_wait dev 30 keyraft status --short -k

# 1. identities
keyraft identity new --json >"$E/admin.json"
keyraft identity new --json >"$E/minio.json"
TENANT_ADMIN_KEY=$(json_field api_key <"$E/admin.json")
TENANT_ADMIN_ID=$(json_field identity <"$E/admin.json")
TENANT_MINIO_KEY=$(json_field api_key <"$E/minio.json")
TENANT_MINIO_ID=$(json_field identity <"$E/minio.json")

# 2. the enclave
e2e_must "2: keyraft enclave create tenant-1 --admin" keyraft enclave create tenant-1 --admin "$TENANT_ADMIN_ID" -k
e2e_check "2: keyraft enclave ls" output_has '"tenant-1"' keyraft enclave ls -k
e2e_check "2: keyraft enclave info tenant-1 names its admin" output_has "$TENANT_ADMIN_ID" keyraft enclave info tenant-1 -k

# 3. policies and identities inside the enclave, by its admin
export KES_API_KEY=$TENANT_ADMIN_KEY
e2e_check "3: the tenant admin creates the minio policy" keyraft policy create minio -e tenant-1 -k \
	--allow '/v1/key/create/*,/v1/key/generate/*,/v1/key/decrypt/*,/v1/key/bulk/decrypt,/v1/key/list,/v1/key/list/*,/v1/status'
e2e_check "3: and assigns the MinIO identity" keyraft policy assign minio "$TENANT_MINIO_ID" -e tenant-1 -k
e2e_check "3: keyraft policy ls -e tenant-1" output_has '"minio"' keyraft policy ls -e tenant-1 -k
e2e_check "3: keyraft policy show minio -e tenant-1" output_has 'generate' keyraft policy show minio -e tenant-1 -k

# 4. the default-enclave policy for what MinIO sends without the header
export KES_API_KEY=$ADMIN_KEY
e2e_check_fails "4: before it, the tenant's MinIO may not read /v1/status" "insufficient permissions" \
	env KES_API_KEY="$TENANT_MINIO_KEY" keyraft status --short -k
e2e_check "4: keyraft policy create tenant-1-status" keyraft policy create tenant-1-status --allow /v1/status -k
e2e_check "4: keyraft policy assign tenant-1-status" keyraft policy assign tenant-1-status "$TENANT_MINIO_ID" -k

# 5. as the tenant's MinIO
export KES_API_KEY=$TENANT_MINIO_KEY
e2e_check "5: status without the header" keyraft status --short -k
e2e_check "5: key create in tenant-1" keyraft key create minio-backend-default-key -e tenant-1 -k
e2e_check "5: key dek in tenant-1" output_has ciphertext keyraft key dek minio-backend-default-key -e tenant-1 -k --json
e2e_check "5: key ls in tenant-1" output_has minio-backend-default-key keyraft key ls -e tenant-1 -k
e2e_check "5: identity info shows the policy and its rules" \
	output_has '"policy":"minio".*"allow"' keyraft identity info -e tenant-1 -k --json

# Isolation
export KES_API_KEY=$ADMIN_KEY
e2e_check "isolation: the same key name in default" keyraft key create minio-backend-default-key -k
CT=$(KES_API_KEY=$TENANT_MINIO_KEY keyraft key dek minio-backend-default-key -e tenant-1 -k --json |
	sed -E 's/.*"ciphertext":"([^"]+)".*/\1/')
e2e_check "isolation: the tenant's ciphertext decrypts in tenant-1" \
	env KES_API_KEY="$TENANT_MINIO_KEY" keyraft key decrypt minio-backend-default-key "$CT" -e tenant-1 -k
e2e_check_fails "isolation: not with default's key of the same name" "not authentic" \
	keyraft key decrypt minio-backend-default-key "$CT" -k
e2e_check "isolation: a default key for the next check" keyraft key create default-only -k
e2e_check_fails "isolation: a key of default does not exist in tenant-1" "key does not exist" \
	env KES_API_KEY="$TENANT_MINIO_KEY" keyraft key dek default-only -e tenant-1 -k
e2e_check_fails "isolation: the tenant's MinIO cannot list default's keys" "insufficient permissions" \
	env KES_API_KEY="$TENANT_MINIO_KEY" keyraft key ls -k
e2e_check_fails "isolation: the tenant admin cannot list enclaves" "insufficient permissions" \
	env KES_API_KEY="$TENANT_ADMIN_KEY" keyraft enclave ls -k
e2e_check_fails "isolation: the tenant admin cannot create enclaves" "insufficient permissions" \
	env KES_API_KEY="$TENANT_ADMIN_KEY" keyraft enclave create other --admin "$TENANT_MINIO_ID" -k
e2e_check_fails "isolation: the tenant admin cannot use default" "insufficient permissions" \
	env KES_API_KEY="$TENANT_ADMIN_KEY" keyraft key ls -k
e2e_check "isolation: tenant-1's policies are not listed in default" output_lacks '"minio"' keyraft policy ls -k
e2e_check "isolation: default's policies are not listed in tenant-1" output_lacks 'tenant-1-status' \
	env KES_API_KEY="$TENANT_ADMIN_KEY" keyraft policy ls -e tenant-1 -k
e2e_check "isolation: the cluster admin sees the tenant's keys" output_has minio-backend-default-key keyraft key ls -e tenant-1 -k

# Deleting a tenant
keystore=$(grep -Eo 'data in [^ ,]+' "$E2E_WORK/logs/dev.log" | awk '{print $3}')/keystore
before=$(ls "$keystore" | wc -l)
e2e_check "delete: keyraft enclave rm tenant-1" keyraft enclave rm tenant-1 -k
e2e_check "delete: keyraft policy rm tenant-1-status" keyraft policy rm tenant-1-status -k
e2e_check "delete: the tenant's key left the keystore" test "$(ls "$keystore" | wc -l)" -lt "$before"
e2e_check_fails "delete: the tenant's MinIO is refused" "insufficient permissions|not exist" \
	env KES_API_KEY="$TENANT_MINIO_KEY" keyraft key ls -e tenant-1 -k
e2e_check_fails "delete: and its default-enclave policy is gone" "insufficient permissions" \
	env KES_API_KEY="$TENANT_MINIO_KEY" keyraft status --short -k
e2e_check "delete: an enclave of the same name created later is empty" keyraft enclave create tenant-1 --admin "$TENANT_ADMIN_ID" -k
e2e_check "delete: (its key list)" output_lacks minio-backend-default-key keyraft key ls -e tenant-1 -k
e2e_stop dev
e2e_phase_end
