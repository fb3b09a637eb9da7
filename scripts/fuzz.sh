#!/bin/sh
# Runs every fuzz target briefly: FUZZTIME executions each (default 10000x;
# a count rather than a duration, because a timed run can end with Go's
# spurious "context deadline exceeded" when a worker is slow to stop on a
# loaded machine). Go fuzzes one target per invocation, so list them per
# package.
set -e
FUZZTIME=${FUZZTIME:-10000x}
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for t in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		echo "fuzz $pkg $t ($FUZZTIME)"
		if ! go test -run '^$' -fuzz "^$t\$" -fuzztime "$FUZZTIME" "$pkg" >/tmp/neti-fuzz.log 2>&1; then
			# A real finding names a failing input; anything else is the
			# fuzzing engine itself: run once more before failing.
			if grep -q "Failing input\|testdata/fuzz" /tmp/neti-fuzz.log; then
				cat /tmp/neti-fuzz.log
				exit 1
			fi
			go test -run '^$' -fuzz "^$t\$" -fuzztime "$FUZZTIME" "$pkg" >/tmp/neti-fuzz.log 2>&1 || { cat /tmp/neti-fuzz.log; exit 1; }
		fi
	done
done
