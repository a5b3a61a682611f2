#!/usr/bin/env bash
# deploy-secrets.sh creates the credentials of deploy/ so that nothing is deployed
# with a placeholder password. Each password is 32 random bytes, URL-safe base64.
#
#   scripts/deploy-secrets.sh compose
#       writes deploy/.env (mode 0600; docker compose reads it beside compose.yaml)
#       with NATS_PASSWORD, CALLBACKS_PASSWORD and ADMIN_PASSWORD. An existing
#       file is kept: delete it to rotate (see docs/operations.md).
#
#   GATEWAY_PASSWORD=... scripts/deploy-secrets.sh k8s [kubectl args...]
#       creates or replaces the Secret jetsms-credentials of deploy/k8s with the
#       keys gateway-password (from GATEWAY_PASSWORD), nats-password,
#       callbacks-password and admin-password (each from the variable of the same
#       name in capitals when set, e.g. NATS_PASSWORD, else generated), e.g.
#       scripts/deploy-secrets.sh k8s -n sms. The values are printed nowhere: read
#       them back with kubectl get secret jetsms-credentials -o jsonpath=...
#
# It needs bash, head, base64 and tr (and kubectl for k8s).
set -euo pipefail

generate() {
	head -c 32 /dev/urandom | base64 | tr -d '=\n' | tr '+/' '-_'
}

usage() {
	sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

[ $# -ge 1 ] || usage
target=$1
shift

case "$target" in
compose)
	env_file="$(cd "$(dirname "$0")/.." && pwd)/deploy/.env"
	if [ -e "$env_file" ]; then
		echo "deploy-secrets: $env_file exists; kept (delete it to make new credentials)" >&2
		exit 0
	fi
	umask 077
	{
		echo "# Credentials of deploy/compose.yaml, made by scripts/deploy-secrets.sh. Keep it 0600; never commit it."
		echo "NATS_PASSWORD=$(generate)"
		echo "CALLBACKS_PASSWORD=$(generate)"
		echo "ADMIN_PASSWORD=$(generate)"
	} >"$env_file"
	echo "deploy-secrets: wrote $env_file" >&2
	;;
k8s)
	: "${GATEWAY_PASSWORD:?set GATEWAY_PASSWORD to the password of the gateway application}"
	kubectl create secret generic jetsms-credentials "$@" \
		--from-literal=gateway-password="$GATEWAY_PASSWORD" \
		--from-literal=nats-password="${NATS_PASSWORD:-$(generate)}" \
		--from-literal=callbacks-password="${CALLBACKS_PASSWORD:-$(generate)}" \
		--from-literal=admin-password="${ADMIN_PASSWORD:-$(generate)}" \
		--dry-run=client -o yaml | kubectl apply "$@" -f -
	;;
*)
	usage
	;;
esac
