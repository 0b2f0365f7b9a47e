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
