#!/usr/bin/env bash
# Runs every fuzz target of the module with the given budget each (default
# 50000 executions). Go runs one fuzz target per invocation, so list them and
# loop.
#
# The default budget is a count ("Nx"), not a duration: with a duration, Go
# 1.26's fuzz coordinator can report "context deadline exceeded" as a failure
# when the deadline races a busy worker (go.dev/issue/75804, fixed in Go
# 1.27), which on a loaded 2-core CI box fails targets that found nothing.
# A count has no deadline to race. FUZZTIME=5m still works for long runs.
set -euo pipefail
budget=${1:-50000x}
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		echo "fuzz: $pkg $target ($budget)"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$budget" "$pkg"
	done
done
