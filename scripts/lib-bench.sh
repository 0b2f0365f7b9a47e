# lib-bench.sh: what the bench scripts (bench-pair.sh, bench-cluster.sh,
# bench-floor3.sh, h2floor.sh) share. Source it after setting BENCH_NAME
# (the script's name, used in messages and in the temporary directory's
# name). It checks the tools,
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

# pair_table <a> <b> <ratio label>: prints, from the $ROUNDS rounds of
# bench_pair in $OUT, a row per round and the medians of requests/s, server
# CPU µs per request and p99 of <a> and <b>, with the ratio <b> ÷ <a> of the
# CPU per request, then "CPU per request, <ratio label>: median …".
pair_table() {
	python3 - "$OUT" "$ROUNDS" "$1" "$2" "$3" <<'PY'
import json, statistics, sys
out, rounds, a, b, label = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
rows = []
for r in range(1, rounds + 1):
    x = json.load(open(f"{out}/round{r}-{a}.json"))
    y = json.load(open(f"{out}/round{r}-{b}.json"))
    rows.append([str(r), x["requests_per_second"], y["requests_per_second"], x["cpu_us_per_request"],
                 y["cpu_us_per_request"], y["cpu_us_per_request"] / x["cpu_us_per_request"], x["p99_ms"], y["p99_ms"]])
med = ["median"] + [statistics.median(col) for col in list(zip(*rows))[1:]]
hdr = ["round", f"{a} req/s", f"{b} req/s", f"{a} CPU µs/req", f"{b} CPU µs/req", "ratio", f"{a} p99 ms", f"{b} p99 ms"]
fmt = lambda v: v if isinstance(v, str) else f"{v:.0f}" if v >= 100 else f"{v:.2f}"
table = [hdr] + [[fmt(v) for v in row] for row in rows + [med]]
widths = [max(len(row[i]) for row in table) for i in range(len(hdr))]
for row in table:
    print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
print(f"CPU per request, {label}: median {med[5]:.3f}")
PY
}
