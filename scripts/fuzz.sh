#!/usr/bin/env bash
# Runs every fuzz target for a while: FUZZTIME each (default 10s; `make fuzz
# FUZZTIME=5m` for a long run by hand). A crash is saved under testdata/fuzz and
# fails the run; commit it as a regression case.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
status=0
while IFS= read -r line; do
	file=${line%%:*}
	name=${line#*func }
	name=${name%%(*}
	pkg=./$(dirname "$file")
	echo "fuzz $pkg $name ($fuzztime)"
	if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime 5s "$pkg"; then
		status=1
	fi
done < <(grep -rn --include='*_test.go' '^func Fuzz' . | sed 's|^\./||' | sort)
exit $status
