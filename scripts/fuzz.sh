#!/usr/bin/env bash
# Runs every fuzz target for a while: FUZZTIME each (default 10s; `make test`
# gives 3s, `make fuzz FUZZTIME=5m` is a long run by hand). A crash is saved under
# the package's testdata/fuzz and fails the run; commit it as a regression case.
#
# Each package's test binary is built once, with the fuzzer's instrumentation
# (go test -c -fuzz), and run for each of its targets in turn from the package's
# directory, with the corpus cache `go test -fuzz` would use: the same run as
# `go test -run '^$' -fuzz '^Name$' ./pkg`, without linking the binary again for
# every target.
set -uo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
root=$(pwd)
module=$(go list -m)
cache=$(go env GOCACHE)/fuzz
bins=$(mktemp -d)
trap 'rm -rf "$bins"' EXIT
status=0

# fuzz runs target name of the package in directory dir with binary bin.
fuzz() {
	local dir=$1 bin=$2 name=$3 out
	echo "fuzz ./$dir $name ($fuzztime)"
	out=$(mktemp)
	if ! (cd "$root/$dir" && "$bin" -test.run='^$' -test.fuzz="^${name}\$" -test.fuzztime="$fuzztime" \
		-test.fuzzminimizetime=5s -test.fuzzcachedir="$cache/$module/$dir" -test.paniconexit0) 2>&1 | tee "$out"; then
		# Go's fuzzer can end with "context deadline exceeded" when -fuzztime runs out
		# while it is still minimising a new interesting input. That is not a finding:
		# a real one says "Failing input written to". Anything else fails the run.
		if grep -q 'Failing input written to' "$out" || ! grep -q 'context deadline exceeded' "$out"; then
			status=1
		else
			echo "fuzz ./$dir $name: time ran out while minimising an input; no failure found"
		fi
	fi
	rm -f "$out"
}

# Every target as "dir<TAB>name", a package's together.
targets() {
	grep -rn --include='*_test.go' '^func Fuzz' . | sed 's|^\./||' | while IFS= read -r line; do
		name=${line#*func }
		printf '%s\t%s\n' "$(dirname "${line%%:*}")" "${name%%(*}"
	done | sort
}

built=""
while IFS=$'\t' read -r dir name; do
	bin=$bins/$(echo "$dir" | tr / _).test
	if [ "$built" != "$dir" ]; then
		built=$dir
		echo "build ./$dir with the fuzzer's instrumentation"
		if ! go test -c -fuzz=. -o "$bin" "./$dir"; then
			status=1
			continue
		fi
	fi
	[ -x "$bin" ] || continue # its build failed, reported above
	fuzz "$dir" "$bin" "$name"
done < <(targets)
exit $status
