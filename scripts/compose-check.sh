#!/usr/bin/env bash
# Check the Docker Compose cluster end to end:
#   start it (scripts/compose-up.sh), create a key through node1's published
#   port, read and use it through node3 and node2, stop the leader's
#   container, measure how long until a key create succeeds again through a
#   survivor, check the survivors agree, start the stopped node again and
#   wait until it is back, take the whole cluster down and up again with its
#   volumes (a new network), check the keys are still there and writes work,
#   then `down -v` (unless KEEP=1).
#   STOP=kill stops the leader with SIGKILL (`kill`) instead of `stop`.
#
# Not named e2e-*.sh: building the static kumo binary on a cold cache takes
# several minutes, more than .ci/run's end-to-end scripts may take.
set -euo pipefail
cd "$(dirname "$0")/.."

if docker compose version >/dev/null 2>&1; then
	compose=(docker compose)
else
	compose=(docker-compose)
fi
cleanup() {
	status=$?
	if [ $status -ne 0 ]; then
		echo "compose-check: FAILED; last logs:" >&2
		"${compose[@]}" logs --tail=40 >&2 || true
	fi
	if [ "${KEEP:-0}" != 1 ]; then
		echo "== ${compose[*]} down -v"
		"${compose[@]}" down -v
	fi
	exit $status
}
trap cleanup EXIT

bash scripts/compose-up.sh

kr=deploy/bin/keyraft
KES_API_KEY=$(cat deploy/generated/admin.key)
export KES_API_KEY
unset MINIO_KES_SERVER KES_SERVER MINIO_KMS_KES_ENDPOINT MINIO_KES_API_KEY MINIO_KMS_KES_API_KEY
declare -A port=([node1]="${KEYRAFT_NODE1_PORT:-7371}" [node2]="${KEYRAFT_NODE2_PORT:-7372}" [node3]="${KEYRAFT_NODE3_PORT:-7373}")
ep() { echo "https://127.0.0.1:${port[$1]}"; }
all="$(ep node1),$(ep node2),$(ep node3)"
field() { sed -E "s/.*\"$1\":\"([^\"]*)\".*/\\1/"; }
now_ms() { date +%s%3N; }

key="compose-check-$(date +%s)"
echo "== create $key through node1, use it through node3 and node2"
"$kr" key create "$key" -k --server "$(ep node1)"
"$kr" key info "$key" -k --server "$(ep node3)" --json | grep -q "\"name\":\"$key\""
ct=$("$kr" key encrypt "$key" "compose check" -k --server "$(ep node3)" --json | field ciphertext)
pt=$("$kr" key decrypt "$key" "$ct" -k --server "$(ep node2)" --json | field plaintext)
[ "$(printf '%s' "$pt" | base64 -d)" = "compose check" ] || { echo "decrypt on node2 returned something else" >&2; exit 1; }

leader=$("$kr" cluster status -k --server "$all" --json | field leader)
case "$leader" in node1 | node2 | node3) ;; *) echo "no leader: '$leader'" >&2; exit 1 ;; esac
survivors=()
for n in node1 node2 node3; do [ "$n" = "$leader" ] || survivors+=("$n"); done

echo "== ${STOP:-stop} the leader's container ($leader)"
t0=$(now_ms)
if [ "${STOP:-stop}" = kill ]; then
	"${compose[@]}" kill "$leader"
else
	"${compose[@]}" stop -t 10 "$leader"
fi
t1=$(now_ms)
echo "   ${STOP:-stop} took $((t1 - t0)) ms"
i=0
until "$kr" key create "after-stop-$key-$i" -k --server "$(ep "${survivors[$((i % 2))]}")" >/dev/null 2>&1; do
	i=$((i + 1))
	if [ $(($(now_ms) - t1)) -gt 60000 ]; then
		echo "no key create succeeded within 60s of stopping $leader" >&2
		exit 1
	fi
	sleep 0.2
done
t2=$(now_ms)
echo "   a key create succeeded $((t2 - t1)) ms after the container stopped ($((t2 - t0)) ms after '${STOP:-stop}' began; $((i + 1)) attempts)"

for n in "${survivors[@]}"; do
	l=$("$kr" cluster status -k --server "$(ep "$n")" --json | field leader)
	echo "   $n sees leader $l"
	if [ -z "$l" ] || [ "$l" = "$leader" ]; then
		echo "$n still sees leader '$l'" >&2
		exit 1
	fi
	"$kr" key info "after-stop-$key-$i" -k --server "$(ep "$n")" --json >/dev/null
	"$kr" key info "$key" -k --server "$(ep "$n")" --json >/dev/null
done

echo "== start $leader again and wait until it follows"
"${compose[@]}" start "$leader"
deadline=$((SECONDS + 120))
until "$kr" key info "after-stop-$key-$i" -k --server "$(ep "$leader")" --json >/dev/null 2>&1; do
	[ $SECONDS -lt $deadline ] || { echo "$leader did not come back within 120s" >&2; exit 1; }
	sleep 0.5
done
"$kr" cluster status -k --server "$(ep "$leader")"

echo "== down (keeping the volumes) and up again"
"${compose[@]}" down
"${compose[@]}" up -d
deadline=$((SECONDS + 180))
until "$kr" key create "after-restart-$key" -k --server "$(ep node2)" >/dev/null 2>&1; do
	[ $SECONDS -lt $deadline ] || { echo "no write within 180s of restarting the cluster" >&2; exit 1; }
	sleep 0.5
done
for n in node1 node2 node3; do
	until "$kr" key info "after-restart-$key" -k --server "$(ep "$n")" --json >/dev/null 2>&1; do
		[ $SECONDS -lt $deadline ] || { echo "$n did not catch up after the restart" >&2; exit 1; }
		sleep 0.5
	done
	"$kr" key info "$key" -k --server "$(ep "$n")" --json >/dev/null
done
"$kr" cluster status -k --server "$(ep node1)"
echo "== compose check passed"
