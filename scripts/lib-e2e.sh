# shellcheck shell=bash
# lib-e2e.sh: helpers shared by the end-to-end scripts in scripts/.
#
# Source it from a script that runs under `set -euo pipefail`, then call
# e2e_init. It provides:
#   - a scratch directory ($E2E_WORK, from mktemp -d) removed at exit;
#   - background processes started with e2e_start and tracked by PID; the
#     EXIT trap stops every one still running (SIGTERM, then SIGKILL);
#   - free loopback ports (e2e_port), polling with a deadline (e2e_wait);
#   - PASS/FAIL bookkeeping (e2e_check, e2e_check_fails, e2e_must), where a
#     failed check does not stop the run but fails it at exit;
#   - per-phase timings (e2e_phase) and a summary printed at exit.
# The script exits non-zero if any check failed.
#
# Caveat: bash ignores `set -e` in commands tested by `if`, `&&` and `||`,
# which is how e2e_check runs its command: the commands passed to it (and
# the functions they call) must propagate failures themselves (`&&`,
# `|| return 1`).

E2E_FAILS=0
E2E_PASSES=0
E2E_PORTS=" "
E2E_PHASE=""
E2E_PHASE_T0=0
E2E_T0=0
E2E_TIMES=()
declare -A E2E_PID=()
declare -A E2E_LOG=()

# e2e_now_ms prints the wall clock in milliseconds.
e2e_now_ms() {
	local us=${EPOCHREALTIME/[.,]/}
	echo $((us / 1000))
}

# e2e_secs <ms> prints milliseconds as seconds with one decimal.
e2e_secs() {
	printf '%d.%d' $(($1 / 1000)) $((($1 % 1000) / 100))
}

# e2e_init <name>: scratch directory, traps and the run clock.
e2e_init() {
	E2E_NAME=$1
	E2E_T0=$(e2e_now_ms)
	E2E_WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
	mkdir -p "$E2E_WORK/logs"
	# The run's stdout and stderr, for e2e_exit: a signal may arrive while a
	# check's output is redirected to a file.
	exec 7>&1 8>&2
	trap e2e_exit EXIT
	trap 'echo "interrupted" >&8; exit 130' INT
	trap 'echo "terminated" >&8; exit 143' TERM
}

# e2e_phase <name>: ends the current phase (recording its time), starts one.
e2e_phase() {
	e2e_phase_end
	E2E_PHASE=$1
	E2E_PHASE_T0=$(e2e_now_ms)
	echo
	echo "== $E2E_PHASE"
}

# e2e_phase_end: records the current phase's time, if a phase is running.
e2e_phase_end() {
	if [ -n "$E2E_PHASE" ]; then
		E2E_TIMES+=("$(e2e_secs $(($(e2e_now_ms) - E2E_PHASE_T0)))s|$E2E_PHASE")
		E2E_PHASE=""
	fi
}

# e2e_pass / e2e_fail <description>: print and count a result.
e2e_pass() {
	echo "PASS $1"
	E2E_PASSES=$((E2E_PASSES + 1))
}
e2e_fail() {
	echo "FAIL $1"
	E2E_FAILS=$((E2E_FAILS + 1))
}

# e2e_run <description> <command...>: runs the command in this shell (not a
# subshell, so it may start processes with e2e_start and set variables) with
# its output in a file; prints PASS, or FAIL with the output's tail.
# Returns the command's status.
e2e_run() {
	local _e2e_what=$1 _e2e_rc=0
	shift
	"$@" >"$E2E_WORK/logs/check.out" 2>&1 || _e2e_rc=$?
	if [ "$_e2e_rc" -eq 0 ]; then
		e2e_pass "$_e2e_what"
	else
		e2e_fail "$_e2e_what (exit $_e2e_rc)"
		tail -n 25 "$E2E_WORK/logs/check.out" | sed 's/^/    | /'
	fi
	return "$_e2e_rc"
}

# e2e_check <description> <command...>: e2e_run, then carry on either way
# (returns 0; a failure is counted and fails the run at exit).
e2e_check() {
	e2e_run "$@" || true
}

# e2e_must <description> <command...>: e2e_run; a failure ends the run now
# (for steps that later checks cannot do without).
e2e_must() {
	e2e_run "$@" || exit 1
}

# e2e_check_fails <description> <regexp> <command...>: PASS if the command
# fails with output matching the extended regexp (so that it failed for the
# expected reason); runs in this shell like e2e_run; returns 0 either way.
e2e_check_fails() {
	local _e2e_what=$1 _e2e_re=$2 _e2e_rc=0
	shift 2
	"$@" >"$E2E_WORK/logs/check.out" 2>&1 || _e2e_rc=$?
	if [ "$_e2e_rc" -ne 0 ] && grep -Eq -- "$_e2e_re" "$E2E_WORK/logs/check.out"; then
		e2e_pass "$_e2e_what"
		grep -E -m 1 -- "$_e2e_re" "$E2E_WORK/logs/check.out" | sed 's/^/    refused: /'
	elif [ "$_e2e_rc" -ne 0 ]; then
		e2e_fail "$_e2e_what (exit $_e2e_rc, but no /$_e2e_re/ in the output)"
		tail -n 10 "$E2E_WORK/logs/check.out" | sed 's/^/    | /'
	else
		e2e_fail "$_e2e_what (the command succeeded)"
		tail -n 10 "$E2E_WORK/logs/check.out" | sed 's/^/    | /'
	fi
}

# e2e_port <var>: stores in <var> a loopback TCP port that no socket uses
# and that this run has not handed out before. Ports come from 20000-31999,
# below Linux's default ephemeral range, so outgoing connections do not take
# them between the choice and the bind.
e2e_port() {
	local p hex
	for _ in $(seq 1 500); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
		case $E2E_PORTS in *" $p "*) continue ;; esac
		hex=$(printf '%04X' "$p")
		if cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '{print $2}' | grep -qi ":$hex\$"; then
			continue
		fi
		E2E_PORTS+="$p "
		printf -v "$1" '%s' "$p"
		return 0
	done
	echo "e2e_port: no free port found" >&2
	return 1
}

# e2e_start <name> <command...>: runs the command in the background with
# stdin from /dev/null and output appended to $E2E_WORK/logs/<name>.log, and
# remembers its PID under <name>. The command must be an executable (or
# `env ... executable`), not a shell function, so that the PID is the
# program's own.
e2e_start() {
	local name=$1
	shift
	local log="$E2E_WORK/logs/$name.log"
	echo "---- start: $*" >>"$log"
	"$@" >>"$log" 2>&1 </dev/null &
	E2E_PID[$name]=$!
	E2E_LOG[$name]=$log
}

# e2e_alive <name>: succeeds while the named process runs.
e2e_alive() {
	local pid=${E2E_PID[$1]:-}
	[ -n "$pid" ] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	# A child that exited but was not reaped yet is a zombie ("Z").
	local state
	state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[ "$state" != "Z" ]
}

# e2e_stop <name>: SIGTERM, wait up to 30 s, then SIGKILL; reaps the PID.
e2e_stop() {
	local name=$1 pid=${E2E_PID[$1]:-}
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	local deadline=$((SECONDS + 30))
	while e2e_alive "$name" && [ "$SECONDS" -lt "$deadline" ]; do
		sleep 0.1
	done
	if e2e_alive "$name"; then
		echo "e2e: $name (pid $pid) ignored SIGTERM for 30 s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	unset "E2E_PID[$name]"
}

# e2e_wait <name> <seconds> <command...>: polls the command (every 0.2 s,
# output discarded) until it succeeds. Fails when the deadline passes or
# when the process <name> (if not "-") exits meanwhile.
e2e_wait() {
	local name=$1 deadline=$((SECONDS + $2))
	shift 2
	while ! "$@" >/dev/null 2>&1; do
		if [ "$name" != "-" ] && ! e2e_alive "$name"; then
			echo "e2e_wait: $name exited; last log lines:" >&2
			tail -n 25 "${E2E_LOG[$name]}" >&2
			return 1
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "e2e_wait: timed out after $2 s waiting for: $*" >&2
			[ "$name" = "-" ] || tail -n 25 "${E2E_LOG[$name]}" >&2
			return 1
		fi
		sleep 0.2
	done
}

# e2e_exit: the EXIT trap. Stops every process still running, prints the
# logs' tails if anything failed, the timings and the verdict, removes the
# scratch directory and exits non-zero on any failure.
e2e_exit() {
	local rc=$?
	set +e
	exec 1>&7 2>&8
	e2e_phase_end
	local name
	for name in "${!E2E_PID[@]}"; do
		e2e_stop "$name"
	done
	if [ "$rc" -ne 0 ] || [ "$E2E_FAILS" -ne 0 ]; then
		for name in "${!E2E_LOG[@]}"; do
			echo
			echo "---- last lines of $name's log"
			tail -n 40 "${E2E_LOG[$name]}"
		done
	fi
	echo
	echo "== $E2E_NAME timings"
	local t
	for t in "${E2E_TIMES[@]}"; do
		printf '  %9s  %s\n' "${t%%|*}" "${t#*|}"
	done
	printf '  %9s  %s\n' "$(e2e_secs $(($(e2e_now_ms) - E2E_T0)))s" "total"
	rm -rf "$E2E_WORK"
	if [ "$rc" -eq 0 ] && [ "$E2E_FAILS" -ne 0 ]; then
		rc=1
	fi
	if [ "$rc" -eq 0 ]; then
		echo "== $E2E_NAME: PASS ($E2E_PASSES checks)"
	else
		echo "== $E2E_NAME: FAIL ($E2E_FAILS of $((E2E_PASSES + E2E_FAILS)) checks failed, exit $rc)"
	fi
	exit "$rc"
}

# ---------------------------------------------------------------------------
# Helpers added for scripts/e2e-minio-outage.sh (usable by any script).

# Known-good MinIO and mc module versions (the ones e2e-minio.sh pins; see
# its header): the fallback when @latest does not build.
E2E_MINIO_PINNED=v0.0.0-20260212201848-7aac2a2c5b7c
E2E_MC_PINNED=v0.0.0-20250313080218-cf909e1063a9

# e2e_bin_dir: prints where `go install` puts binaries ($GOBIN, else the
# first $GOPATH entry's bin).
e2e_bin_dir() {
	local dir
	dir=$(go env GOBIN)
	if [ -z "$dir" ]; then
		dir=$(go env GOPATH)
		dir="${dir%%:*}/bin"
	fi
	echo "$dir"
}

# e2e_go_install <bin dir> <binary> <package> <version> [<fallback version>]:
# go install <package>@<version> (else @<fallback>) into <bin dir> unless
# <bin dir>/<binary> already runs (`<binary> --help`). CGO is off. Says what
# it did in $E2E_INSTALLED. Extra environment for `go install` (e.g.
# GONOSUMDB, GOFLAGS) is taken from $E2E_GO_INSTALL_ENV (an array).
e2e_go_install() {
	local dir=$1 name=$2 pkg=$3 version=$4 fallback=${5:-} t0
	if [ -x "$dir/$name" ] && "$dir/$name" --help >/dev/null 2>&1; then
		E2E_INSTALLED="$dir/$name was already installed"
		return 0
	fi
	mkdir -p "$dir"
	t0=$(e2e_now_ms)
	if ! (cd "$E2E_WORK" && env "${E2E_GO_INSTALL_ENV[@]}" GOBIN="$dir" CGO_ENABLED=0 go install "$pkg@$version"); then
		[ -n "$fallback" ] && [ "$version" != "$fallback" ] || return 1
		echo "go install $pkg@$version failed; trying @$fallback"
		version=$fallback
		(cd "$E2E_WORK" && env "${E2E_GO_INSTALL_ENV[@]}" GOBIN="$dir" CGO_ENABLED=0 go install "$pkg@$version") || return 1
	fi
	E2E_INSTALLED="go install $pkg@$version into $dir took $(e2e_secs $(($(e2e_now_ms) - t0)))s"
}
E2E_GO_INSTALL_ENV=()

# e2e_http_ok <port> <path>: succeeds if GET http://127.0.0.1:<port><path>
# answers 200 (bash's /dev/tcp: no curl needed).
e2e_http_ok() {
	# shellcheck disable=SC2016 # $1 and $2 belong to the inner bash
	timeout 5 bash -c '{ printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" "$2" >&3; head -n 1 <&3; } 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" "$2" 2>/dev/null |
		grep -q '^HTTP/1\.[01] 200'
}

# e2e_kumo_ok <port>: the kumo AWS emulator on 127.0.0.1:<port> answers an
# unsigned Secrets Manager ListSecrets call with 200 (what awstest.Ping
# sends), within 2 s.
e2e_kumo_ok() {
	# shellcheck disable=SC2016 # $1 belongs to the inner bash
	timeout 2 bash -c 'body="{\"MaxResults\":1}"
		{ printf "POST / HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: secretsmanager.ListSecrets\r\nContent-Length: %d\r\n\r\n%s" "${#body}" "$body" >&3
		  head -n 1 <&3; } 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null |
		grep -q '^HTTP/1\.[01] 200'
}

# e2e_keyraft_formed <server URL> <voters>: `keyraft cluster status` on that
# node reports <voters> voters, a leader and no member errors (keyraft must
# be on $PATH, with KES_API_KEY/KES_CLIENT_* and MINIO_KMS_KES_CAPATH set).
e2e_keyraft_formed() {
	local st
	st=$(keyraft cluster status --json --server "$1") || return 1
	[ "$(grep -o '"voter":true' <<<"$st" | wc -l)" -eq "$2" ] &&
		grep -q '"leader":"[^"]' <<<"$st" && ! grep -q '"error"' <<<"$st"
}

# e2e_start_fn <name> <function> [args...]: runs a shell function of the
# script in a background subshell (stdin /dev/null, output appended to
# $E2E_WORK/logs/<name>.log) and tracks the subshell's PID under <name> like
# e2e_start, so e2e_stop and the EXIT trap stop it. The function should
# bound its own child commands in time (timeout): a child running when the
# subshell is stopped finishes on its own.
e2e_start_fn() {
	local name=$1
	shift
	local log="$E2E_WORK/logs/$name.log"
	echo "---- start (function): $*" >>"$log"
	("$@") >>"$log" 2>&1 </dev/null &
	E2E_PID[$name]=$!
	E2E_LOG[$name]=$log
}

# e2e_kumo_call <port> <X-Amz-Target> <JSON body>: one unsigned JSON call to
# the kumo AWS emulator on 127.0.0.1:<port> (e.g. secretsmanager.ListSecrets
# '{"MaxResults":100}'); prints the response body, fails unless it answers
# 200 within 5 s.
e2e_kumo_call() {
	local out
	# shellcheck disable=SC2016 # $1..$3 belong to the inner bash
	out=$(timeout 5 bash -c '{ printf "POST / HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: %s\r\nContent-Length: %d\r\n\r\n%s" "$2" "${#3}" "$3" >&4
		cat <&4; } 4<>"/dev/tcp/127.0.0.1/$1"' _ "$1" "$2" "$3" 2>/dev/null) || return 1
	grep -q $'^HTTP/1\\.[01] 200' <<<"$out" || { echo "$out"; return 1; }
	sed '1,/^\r\{0,1\}$/d' <<<"$out"
}

# e2e_cluster_identities, run in the directory that holds cas/: for three
# nodes, two free ports each (API[n], RAFT[n]) and a certificate (nodeN.cert
# and .key, its identity in NODE_ID[n], a copy in cas/); MinIO's client
# certificate (minio-kes.cert/.key, identity MINIO_IDENTITY_HASH); an admin
# API key (ADMIN_API_KEY, identity ADMIN_ID); and ENDPOINTS listing the
# three nodes' API URLs. The caller declares the arrays API, RAFT, NODE_ID.
e2e_cluster_identities() {
	local n
	for n in 1 2 3; do
		e2e_port "API[$n]"
		e2e_port "RAFT[$n]"
		e2e_must "keyraft identity new kes_node$n" \
			keyraft identity new "kes_node$n" --key "node$n.key" --cert "node$n.cert" --ip 127.0.0.1 --dns localhost
		NODE_ID[n]=$(keyraft identity of "node$n.cert")
		cp "node$n.cert" cas/
	done
	e2e_must "keyraft identity new minio_server" \
		keyraft identity new minio_server --key minio-kes.key --cert minio-kes.cert --ip 127.0.0.1 --dns localhost
	MINIO_IDENTITY_HASH=$(keyraft identity of minio-kes.cert)
	ADMIN_API_KEY=$(keyraft identity new --json | sed -n 's/.*"api_key":"\([^"]*\)".*/\1/p')
	ADMIN_ID=$(keyraft identity of "$ADMIN_API_KEY")
	ENDPOINTS="https://127.0.0.1:${API[1]},https://127.0.0.1:${API[2]},https://127.0.0.1:${API[3]}"
}
