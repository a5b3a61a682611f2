#!/usr/bin/env bash
# Runs every fuzz target for a while: FUZZTIME each (default 10s; `make test`
# gives 2s, `make fuzz FUZZTIME=5m` is a long run by hand). A crash is saved under
# the package's testdata/fuzz and fails the run; commit it as a regression case.
#
# Each package's test binary is built once, with the fuzzer's instrumentation
# (go test -c -fuzz), and run for each of its targets in turn from the package's
# directory, with the corpus cache `go test -fuzz` would use: the same run as
# `go test -run '^$' -fuzz '^Name$' ./pkg`, without linking the binary again for
# every target. The builds run one after another in the background, a package
# ahead of the fuzzing.
set -uo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
root=$(pwd)
module=$(go list -m)
cache=$(go env GOCACHE)/fuzz
bins=$(mktemp -d)
trap 'rm -rf "$bins"' EXIT
status=0

# targets lists every target as "dir<TAB>name", a package's together.
targets() {
	grep -rn --include='*_test.go' '^func Fuzz' . | sed 's|^\./||' | while IFS= read -r line; do
		name=${line#*func }
		printf '%s\t%s\n' "$(dirname "${line%%:*}")" "${name%%(*}"
	done | sort
}

# bin is where the package in directory $1 has its fuzzing binary.
bin() { echo "$bins/$(echo "$1" | tr / _).test"; }

# build builds each package's binary in turn and says "dir ok" or "dir failed"
# once it is done.
build() {
	local dir
	targets | cut -f1 | uniq | while IFS= read -r dir; do
		if go test -c -fuzz=. -o "$(bin "$dir")" "./$dir" >&2; then
			echo "$dir ok"
		else
			echo "$dir failed"
		fi
	done
}

# fuzz runs target name of the package in directory dir.
fuzz() {
	local dir=$1 name=$2 out
	echo "fuzz ./$dir $name ($fuzztime)"
	out=$(mktemp)
	if ! (cd "$root/$dir" && "$(bin "$dir")" -test.run='^$' -test.fuzz="^${name}\$" -test.fuzztime="$fuzztime" \
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

exec 3< <(build)
built="" ok=false
while IFS=$'\t' read -r dir name; do
	if [ "$built" != "$dir" ]; then
		# The builds come in the same order: wait for this package's.
		IFS=' ' read -r -u 3 built result || { echo "fuzz.sh: no build of ./$dir" >&2; exit 1; }
		[ "$built" = "$dir" ] || { echo "fuzz.sh: built ./$built, expected ./$dir" >&2; exit 1; }
		ok=true
		if [ "$result" != ok ]; then
			echo "fuzz ./$dir: the build failed"
			status=1 ok=false
		fi
	fi
	$ok && fuzz "$dir" "$name"
done < <(targets)
exit $status
