# lib-bench.sh: what scripts/bench-pair.sh and scripts/bench-cluster.sh
# share. Source it after setting BENCH_NAME (the script's name, used in
# messages and in the temporary directory's name). It checks the tools,
# makes $TMP, and stops every PID in PIDS (and removes $TMP) at exit.

for tool in go jq curl python3; do
	command -v "$tool" >/dev/null || { echo "$BENCH_NAME: $tool is required" >&2; exit 1; }
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/$BENCH_NAME.XXXXXX")
PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "$BENCH_NAME: $*" >&2; }
die() { log "$*"; exit 1; }

# free_port prints a TCP port on 127.0.0.1 that the OS reports free.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_for <what> <pid> <log> <command...>: polls the command every 0.1 s
# until it succeeds, for up to WAIT_SECONDS (default 60) s, failing early
# when the server process <pid> has exited (and showing its log).
wait_for() {
	local what=$1 pid=$2 logf=$3 limit=${WAIT_SECONDS:-60}
	local deadline=$((SECONDS + limit))
	shift 3
	until "$@" >/dev/null 2>&1; do
		if ! kill -0 "$pid" 2>/dev/null; then
			log "$what: the server exited; its log:"; cat "$logf" >&2; exit 1
		fi
		if ((SECONDS >= deadline)); then
			log "$what: not after ${limit}s; the log:"; cat "$logf" >&2; exit 1
		fi
		sleep 0.1
	done
}

# bench_pair <round> <a> <b>: runs "$KR" "${BENCH_A[@]}" and
# "$KR" "${BENCH_B[@]}" at once, both holding their load until the same
# moment (START_MARGIN s from now, whatever their set-up took), into
# $OUT/round<round>-<a>.json and -<b>.json. Exits, showing the failed
# bench's stderr, if either fails; logs a round with errors, a late start or
# failed churn operations.
bench_pair() {
	local r=$1 a=$2 b=$3 start pa pb ok=1
	start=$(python3 -c "import time; print('%.3f' % (time.time() + ${START_MARGIN:-2}))")
	"$KR" "${BENCH_A[@]}" --start-at "$start" >"$OUT/round$r-$a.json" 2>"$TMP/bench-$a.err" &
	pa=$!
	"$KR" "${BENCH_B[@]}" --start-at "$start" >"$OUT/round$r-$b.json" 2>"$TMP/bench-$b.err" &
	pb=$!
	PIDS+=("$pa" "$pb")
	wait "$pa" || { log "$a bench failed:"; cat "$TMP/bench-$a.err" >&2; ok=0; }
	wait "$pb" || { log "$b bench failed:"; cat "$TMP/bench-$b.err" >&2; ok=0; }
	((ok)) || exit 1
	for s in "$a" "$b"; do
		jq -e '.errors == 0 and (.start_late_seconds // 0) == 0 and (.churn.failed // 0) == 0' "$OUT/round$r-$s.json" >/dev/null ||
			log "round $r $s: $(jq -c '{errors, error_samples, start_late_seconds, dropped, churn}' "$OUT/round$r-$s.json")"
	done
}
