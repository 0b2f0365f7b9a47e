#!/usr/bin/env bash
# Check the Docker Compose cluster end to end:
#   start it (scripts/compose-up.sh), create a key through keyraft-0's
#   published port, read and use it through keyraft-2 and keyraft-1; fail
#   the leader's container twice, `stop` (graceful: it hands leadership
#   over) and then `kill` (SIGKILL), each time measuring how long until a
#   key create succeeds through a survivor, checking the survivors agree,
#   and starting the node again until it serves the new key; take the whole
#   cluster down and up again with its volumes (a new network, new
#   addresses), check the keys are still there and writes work; then
#   `down -v` (unless KEEP=1). STOP=stop or STOP=kill fails the leader one
#   way only. The CLI verifies the nodes by name against the generated CA
#   bundle (deploy/generated/ca.crt).
#
# Not named e2e-*.sh: .ci/run runs it separately when a Docker engine is
# available. It prints the time of each step and the total.
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

t_start=$SECONDS
bash scripts/compose-up.sh
echo "   compose-up took $((SECONDS - t_start))s"

kr=deploy/bin/keyraft
KES_API_KEY=$(cat deploy/generated/admin.key)
export KES_API_KEY
unset MINIO_KES_SERVER KES_SERVER MINIO_KMS_KES_ENDPOINT MINIO_KES_API_KEY MINIO_KMS_KES_API_KEY
export MINIO_KMS_KES_CAPATH=deploy/generated/ca.crt # the CLI's --ca
declare -A port=([keyraft-0]="${KEYRAFT_PORT_0:-7371}" [keyraft-1]="${KEYRAFT_PORT_1:-7372}" [keyraft-2]="${KEYRAFT_PORT_2:-7373}")
ep() { echo "https://127.0.0.1:${port[$1]}"; }
all="$(ep keyraft-0),$(ep keyraft-1),$(ep keyraft-2)"
field() { sed -E "s/.*\"$1\":\"([^\"]*)\".*/\\1/"; }
now_ms() { date +%s%3N; }

key="compose-check-$(date +%s)"
echo "== create $key through keyraft-0, use it through keyraft-2 and keyraft-1"
"$kr" key create "$key" --server "$(ep keyraft-0)"
"$kr" key info "$key" --server "$(ep keyraft-2)" --json | grep -q "\"name\":\"$key\""
ct=$("$kr" key encrypt "$key" "compose check" --server "$(ep keyraft-2)" --json | field ciphertext)
pt=$("$kr" key decrypt "$key" "$ct" --server "$(ep keyraft-1)" --json | field plaintext)
[ "$(printf '%s' "$pt" | base64 -d)" = "compose check" ] || { echo "decrypt on keyraft-1 returned something else" >&2; exit 1; }
# The members know each other by their stable names, as pods in a StatefulSet.
members=$("$kr" cluster status --server "$all" --json)
for n in keyraft-0 keyraft-1 keyraft-2; do
	grep -q "$n.keyraft:7374" <<<"$members" || { echo "member $n does not advertise $n.keyraft:7374: $members" >&2; exit 1; }
done

# fail_leader <stop|kill>: stops (gracefully) or kills (SIGKILL) the
# leader's container, measures how long until a key create succeeds through
# a survivor, checks that the survivors agree on a new leader and serve the
# keys, then starts the container again and waits until it serves them too.
fail_leader() {
	local how=$1 leader survivors=() n l i t0 t1 t2 deadline name
	leader=$("$kr" cluster status --server "$all" --json | field leader)
	case "$leader" in keyraft-0 | keyraft-1 | keyraft-2) ;; *) echo "no leader: '$leader'" >&2; exit 1 ;; esac
	for n in keyraft-0 keyraft-1 keyraft-2; do [ "$n" = "$leader" ] || survivors+=("$n"); done

	echo "== $how the leader's container ($leader)"
	t0=$(now_ms)
	if [ "$how" = kill ]; then
		"${compose[@]}" kill "$leader"
	else
		"${compose[@]}" stop -t 10 "$leader"
	fi
	t1=$(now_ms)
	echo "   $how took $((t1 - t0)) ms"
	i=0
	until "$kr" key create "after-$how-$key-$i" --server "$(ep "${survivors[$((i % 2))]}")" >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $(($(now_ms) - t1)) -gt 60000 ]; then
			echo "no key create succeeded within 60s of the $how of $leader" >&2
			exit 1
		fi
		sleep 0.2
	done
	t2=$(now_ms)
	name="after-$how-$key-$i"
	echo "   leader $how: a key create succeeded $((t2 - t1)) ms after the container was down ($((t2 - t0)) ms after '$how' began; $((i + 1)) attempts)"

	for n in "${survivors[@]}"; do
		l=$("$kr" cluster status --server "$(ep "$n")" --json | field leader)
		echo "   $n sees leader $l"
		if [ -z "$l" ] || [ "$l" = "$leader" ]; then
			echo "$n still sees leader '$l'" >&2
			exit 1
		fi
		"$kr" key info "$name" --server "$(ep "$n")" --json >/dev/null
		"$kr" key info "$key" --server "$(ep "$n")" --json >/dev/null
	done

	echo "== start $leader again and wait until it follows"
	t0=$(now_ms)
	"${compose[@]}" start "$leader"
	deadline=$((SECONDS + 120))
	until "$kr" key info "$name" --server "$(ep "$leader")" --json >/dev/null 2>&1; do
		[ $SECONDS -lt $deadline ] || { echo "$leader did not come back within 120s" >&2; exit 1; }
		sleep 0.5
	done
	echo "   $leader serves the new key $(($(now_ms) - t0)) ms after 'start' began"
	"$kr" cluster status --server "$(ep "$leader")"
}

for how in ${STOP:-stop kill}; do
	fail_leader "$how"
done

echo "== down (keeping the volumes) and up again"
t0=$(now_ms)
"${compose[@]}" down
"${compose[@]}" up -d
t1=$(now_ms)
echo "   down and up took $((t1 - t0)) ms"
deadline=$((SECONDS + 180))
until "$kr" key create "after-restart-$key" --server "$(ep keyraft-1)" >/dev/null 2>&1; do
	[ $SECONDS -lt $deadline ] || { echo "no write within 180s of restarting the cluster" >&2; exit 1; }
	sleep 0.5
done
t2=$(now_ms)
echo "   a key create succeeded $((t2 - t1)) ms after 'up' returned ($((t2 - t0)) ms after 'down' began)"
for n in keyraft-0 keyraft-1 keyraft-2; do
	until "$kr" key info "after-restart-$key" --server "$(ep "$n")" --json >/dev/null 2>&1; do
		[ $SECONDS -lt $deadline ] || { echo "$n did not catch up after the restart" >&2; exit 1; }
		sleep 0.5
	done
	"$kr" key info "$key" --server "$(ep "$n")" --json >/dev/null
done
echo "   all three nodes serve the keys $(($(now_ms) - t1)) ms after 'up' returned"
"$kr" cluster status --server "$(ep keyraft-0)"
echo "== compose check passed in $((SECONDS - t_start))s"
