// Package deploy holds jetsms's deployment files (container image, compose, Kubernetes, systemd, Grafana dashboard, Prometheus alerts) and the checks that keep them in step with the code.
//
// No container engine or cluster runs where the tests run, so the tests check
// what can be checked without one: every file parses; the Kubernetes manifests
// and the compose file have the services, probes, arguments and dependencies
// they must; every JETSMS_* variable they set is a real setting and the
// configuration each process would load is valid; every PromQL expression of the
// dashboard and the alerts names only series the metrics package registers; the
// systemd unit has its hardening and stop timeout; and the Dockerfile builds a
// static binary in a multi-stage build and runs it as a non-root user. The
// locked-down edges are checked too: NATS requires credentials that come from a
// Secret or deploy/.env (made by scripts/deploy-secrets.sh, which the tests run),
// never from the files; only the callbacks port is published or in a Service;
// the probes and Prometheus ask the admin port, which has credentials; a
// NetworkPolicy names who may connect; and no placeholder Secret is applied.
package deploy
