#!/bin/sh
# Runs every fuzz target for a few seconds (FUZZTIME, default 3s). Go can
# fuzz one target per invocation, so list them per package.
set -e
FUZZTIME=${FUZZTIME:-3s}
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for t in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		echo "fuzz $pkg $t ($FUZZTIME)"
		go test -run '^$' -fuzz "^$t\$" -fuzztime "$FUZZTIME" "$pkg" >/tmp/neti-fuzz.log 2>&1 || { cat /tmp/neti-fuzz.log; exit 1; }
	done
done
