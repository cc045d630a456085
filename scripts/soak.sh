#!/usr/bin/env bash
# The fault and hostile-input tests of tests/reliability at soak sizes
# (16 chatting users killed five times per round, 1 000 connections from one
# address and 1 000 more refused, 2 000 password guesses, a 2 000-item
# roster limit pushed to 4 000, 512 MiB for a slow reader, …), repeated
# until DURATION (default 10m) is over; prints a summary of every round.
#
#   make soak DURATION=30m
#   DURATION=1h VERLAUF_BIN=bin/verlauf bash scripts/soak.sh
#
# Needs root for the tmpfs of the disk-full test, like `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10m}
RUN=${RUN:-.}
if [[ -z "${VERLAUF_BIN:-}" ]]; then
	go build -o bin/verlauf ./cmd/verlauf
	VERLAUF_BIN=$PWD/bin/verlauf
fi
export VERLAUF_BIN SOAK=$DURATION

# DURATION as seconds, with Go's own parser (so "1h30m" works too).
durgo=$(mktemp -d)/dur.go
cat >"$durgo" <<'GO'
package main

import (
	"fmt"
	"os"
	"time"
)

func main() {
	d, err := time.ParseDuration(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(int(d.Seconds()))
}
GO
secs=$(go run "$durgo" "$DURATION")
rm -rf "$(dirname "$durgo")"
ulimit -n 65536 2>/dev/null || true
end=$((SECONDS + secs))
logdir=$(mktemp -d /tmp/verlauf-soak.XXXXXX)
round=0 failed=0
while ((SECONDS < end || round == 0)); do
	round=$((round + 1))
	log=$logdir/round$round.log
	echo "soak: round $round ($((end - SECONDS))s left), log $log"
	if go test -count=1 -v -timeout 60m -run "$RUN" ./tests/reliability/ >"$log" 2>&1; then
		status=ok
	else
		status=FAIL
		failed=$((failed + 1))
	fi
	echo "soak: round $round $status"
	grep -h 'SUMMARY' "$log" | sed 's/^.*SUMMARY /  /' || true
	grep -hE '^--- FAIL' "$log" | sed 's/^/  /' || true
done
echo
echo "soak summary: $round rounds over $DURATION, $failed failed; logs in $logdir"
((failed == 0))
