#!/bin/sh
# Runs every fuzz target of the repository for FUZZTIME each (default 30s),
# one after the other. Plain `go test` already runs the seed corpora; this
# explores beyond them. New failing inputs are written by `go test` to
# <package>/testdata/fuzz/<Target>/ — commit them with the fix.
#
#   FUZZTIME=60s scripts/fuzz.sh            # all targets
#   scripts/fuzz.sh ./fsm FuzzDecode        # one target
set -eu
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-30s}
PARALLEL=${FUZZPARALLEL:-2}

targets='
./api FuzzRequestBody
./internal/crypto FuzzDecrypt
./internal/crypto FuzzParseKeyVersion
./internal/identity FuzzParseAPIKey
./internal/identity FuzzCertificateIdentity
./enclave FuzzMatch
./enclave FuzzDecodeBundle
./internal/config FuzzParse
./fsm FuzzDecode
./fsm FuzzCheckSnapshot
./internal/server FuzzDecodeRPC
./internal/boltcheck FuzzVerify
'
if [ $# -eq 2 ]; then
	targets="$1 $2"
fi

failed=$(mktemp)
trap 'rm -f "$failed"' EXIT
echo "$targets" | while read -r pkg target; do
	[ -n "$pkg" ] || continue
	echo "=== $pkg $target ($FUZZTIME)"
	if ! go test "$pkg" -run '^$' -fuzz "^$target\$" -fuzztime "$FUZZTIME" -parallel "$PARALLEL"; then
		echo "--- FAIL: $pkg $target"
		echo "$pkg $target" >>"$failed"
	fi
done
if [ -s "$failed" ]; then
	echo "failed targets:"
	cat "$failed"
	exit 1
fi
echo "all fuzz targets passed"
