# jetsms: the targets a developer needs. `make test` is what CI runs.

GO       ?= go
BIN      ?= bin/jetsms
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
FUZZTIME ?= 10s
# Pinned linters, built from the Go module proxy on first use.
STATICCHECK   ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOLANGCI_LINT ?= github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0

.PHONY: build run test test-short bench chaos fuzz lint docs clean

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/jetsms

# Embedded NATS in ./data, the worker and the built-in gateway simulator.
run:
	$(GO) run ./cmd/jetsms run

# Everything CI checks: vet, every test under the race detector (the fault suite,
# the e2e suite and the three-node cluster at their CI sizes), and each fuzz
# target briefly (TEST_FUZZTIME each; its seed corpus already ran as a test).
# make chaos adds the long fault suite, the campaign and receipt tests at their
# full sizes and the cluster's rates against the wall clock; make bench the
# benchmarks; make fuzz fuzzes each target longer.
#
# Tests wait on events, with deadlines as failure timeouts, so the race run runs
# the packages side by side: four at a time and four tests of a package at a time
# (-p 4 -parallel 4; most of the suites' time is spent waiting on leases,
# receipts and timers, not on the CPU), the slowest first (TEST_FIRST), so the
# many short ones fill in around them.
# The console's browser tests (test/browser) need Chromium; without one they skip,
# and the line below says so.
TEST_FIRST    = ./test/chaos ./test/e2e ./test/cluster ./worker ./cmd/jetsms ./internal/resolve ./test/browser ./internal/campaign ./internal/app
TEST_FUZZTIME ?= 2s
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -p 4 -parallel 4 $(TEST_FIRST) ./...
	@[ -n "$$CHROMIUM" ] || command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1 || \
		echo "SKIPPED: the console browser tests (test/browser): no Chromium found; apt-get install chromium, or set CHROMIUM=/path/to/chrome"
	FUZZTIME=$(TEST_FUZZTIME) ./scripts/fuzz.sh

test-short:
	$(GO) test -race -short ./...

# Throughput and memory against the ceilings of this machine, from one run.
# BENCH_SCALE=0.1 for a quick look; BENCH_SYNC=always to measure with the embedded
# server's default durability instead of a sync interval.
bench:
	$(GO) test -run '^$$' -bench 'BenchmarkPipeline$$|BenchmarkBacklogMemory$$|BenchmarkPacing$$|BenchmarkCallbacks$$|BenchmarkCampaignPublish$$' -benchtime 1x -timeout 60m ./test/bench/

# The fault suite's long form: SIGKILLs, NATS restarts, a faulty gateway, wrong
# credentials and bad receipts against the jetsms binary, 100,000 jobs for the kill
# case. The summary table goes to test/chaos/results.md. `make test` runs its CI size.
# Before it, the campaign tests at their full sizes (50,000 and 10,000 rows) and
# the receipts of 5,000 jobs (make test: 2,000, 2,000 and 1,000); after
# it, the replicas' arrivals per second against the wall clock, which `make test`
# leaves out (they hold on an idle machine only).
chaos:
	$(GO) test -race -count=1 -timeout 30m -run '^(TestCampaign|TestReceipts)$$' ./test/e2e -args -e2e.large
	$(GO) test -race -count=1 -timeout 60m -v -run '^TestChaos$$' ./test/chaos -args -chaos.scale=5 -chaos.summary=results.md
	$(GO) test -count=1 -v -run '^TestReplicasShareTheAccountRate$$' ./test/cluster -args -cluster.timing

# Each fuzz target for FUZZTIME (make fuzz FUZZTIME=10m for a long run; make test
# gives each TEST_FUZZTIME).
fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(GOLANGCI_LINT) run ./...

# docs/contract.md's settings table, from config.Settings(); a test fails while it
# is out of date.
docs:
	$(GO) generate ./config

clean:
	rm -rf bin
