#!/usr/bin/env bash
# Runs every fuzz target for a while: FUZZTIME each (default 10s; `make fuzz
# FUZZTIME=5m` for a long run by hand). A crash is saved under testdata/fuzz and
# fails the run; commit it as a regression case.
set -uo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
status=0
while IFS= read -r line; do
	file=${line%%:*}
	name=${line#*func }
	name=${name%%(*}
	pkg=./$(dirname "$file")
	echo "fuzz $pkg $name ($fuzztime)"
	out=$(mktemp)
	if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime 5s "$pkg" 2>&1 | tee "$out"; then
		# Go's fuzzer can end with "context deadline exceeded" when -fuzztime runs out
		# while it is still minimising a new interesting input. That is not a finding:
		# a real one says "Failing input written to". Anything else fails the run.
		if grep -q 'Failing input written to' "$out" || ! grep -q 'context deadline exceeded' "$out"; then
			status=1
		else
			echo "fuzz $pkg $name: time ran out while minimising an input; no failure found"
		fi
	fi
	rm -f "$out"
done < <(grep -rn --include='*_test.go' '^func Fuzz' . | sed 's|^\./||' | sort)
exit $status
