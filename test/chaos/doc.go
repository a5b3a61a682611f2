// Package chaos is the fault suite of "no SMS lost, none sent twice": it runs the jetsms binary against a real NATS server and the gateway simulator, breaks things on purpose, and accounts for every job.
//
// The package holds tests only. TestMain builds cmd/jetsms and nats-server (the
// version go.mod requires) once; each case runs its own NATS server process and
// the simulator (gwsim over real HTTP, in the test process), publishes jobs whose
// ids name the case and their index (so the checker knows the whole set), runs
// `jetsms worker` processes against them, injects its fault, and then accounts
// for every job: how often the simulator accepted it (sent once, twice or more,
// never), how many final events it has on the status stream (exactly one is
// required), whether every job sent twice is flagged duplicate_risk, and whether
// its events only move forward. The cases run at once.
//
// # Running it
//
//	go test -race ./chaos                       # the CI size (scale 0.1: 2,000 jobs for the kill case), part of make test
//	CHAOS_SCALE=1 go test -race ./chaos         # five times the CI size
//	make chaos                                  # the long form: 100,000 jobs for the kill case
//	go test -race -count=1 -timeout 60m ./chaos -args -chaos.scale=5 -chaos.summary=results.md
//
// -chaos.scale (or CHAOS_SCALE) multiplies every case's jobs; from 5 on, the
// wrong-credentials window is 30 s instead of 5 s. -chaos.summary names a file
// (relative to this directory) the summary table is written to as Markdown; the
// table is always in the test log, with the story of a few jobs of each notable
// kind. -run 'TestChaos/FaultyGateway' runs one case. Without either the scale
// is 0.1, the CI size (-short too).
//
// The processes' logs go to each case's artifact directory: go test -artifacts
// -outputdir DIR keeps them (a failure shows their tail either way), and
// -chaos.tap adds tap.log, every ledger write, status event and job ack as
// published. Linux only (SIGKILL, and processes that die with the test).
package chaos
