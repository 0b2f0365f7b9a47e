#!/bin/sh
# Builds keyraft and runs the hostile-client attacks of scripts/hostile
# against one node on loopback; prints heap/RSS/latency per attack.
# Takes about 2.5 minutes with the defaults. Extra arguments go to the
# program, e.g.:
#
#   scripts/hostile.sh -only stalled,slow -settle 10s
#   scripts/hostile.sh -limits 'max_requests_per_identity: 64'
set -eu
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
go build -o "$dir/keyraft" ./cmd/keyraft
go build -o "$dir/hostile" ./scripts/hostile
"$dir/hostile" -bin "$dir/keyraft" "$@"
