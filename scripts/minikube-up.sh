#!/usr/bin/env bash
# Starts minikube for the resil demo: the demo image built and loaded with
# `minikube image load`, the metrics-server addon enabled so the HPAs can scale. The demo
# Service is then reachable on the node's IP at NodePort 30080. Safe to run again.
#
#   scripts/minikube-up.sh                      # profile "minikube" → context minikube
#   MINIKUBE_PROFILE=demo scripts/minikube-up.sh  # context "demo": resil needs --allow-context demo
#   MINIKUBE_START_ARGS="--cpus=4 --memory=4096" scripts/minikube-up.sh
#   SKIP_BUILD=1 scripts/minikube-up.sh
#
# Then: resil deploy --context minikube && curl "http://$(minikube ip):30080/"
set -euo pipefail

PROFILE="${MINIKUBE_PROFILE:-minikube}"
IMAGE="${IMAGE:-resil-demo:latest}"
NODE_PORT="${NODE_PORT:-30080}"

die() {
    echo "minikube-up: $*" >&2
    exit 1
}

need() {
    command -v "$1" >/dev/null 2>&1 || die "$1 is not installed or not on PATH. $2"
}

need minikube "Install minikube: https://minikube.sigs.k8s.io/docs/start/"
need docker "Install Docker: https://docs.docker.com/get-docker/"
need kubectl "Install kubectl: https://kubernetes.io/docs/tasks/tools/"
docker info >/dev/null 2>&1 || die "docker is installed but its daemon does not answer; start Docker and retry."

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if minikube -p "${PROFILE}" status >/dev/null 2>&1; then
    echo "minikube-up: profile ${PROFILE} is running; reusing it"
else
    echo "minikube-up: starting profile ${PROFILE}"
    # Word splitting of the extra arguments is intended.
    # shellcheck disable=SC2086
    minikube start -p "${PROFILE}" ${MINIKUBE_START_ARGS:-}
fi

if [[ -z "${SKIP_BUILD:-}" ]]; then
    echo "minikube-up: building ${IMAGE}"
    docker build -t "${IMAGE}" "${ROOT}"
fi
echo "minikube-up: loading ${IMAGE} into the node"
minikube -p "${PROFILE}" image load "${IMAGE}"

echo "minikube-up: enabling the metrics-server addon"
minikube -p "${PROFILE}" addons enable metrics-server
kubectl --context "${PROFILE}" -n kube-system rollout status deployment metrics-server --timeout=180s

NODE_IP="$(minikube -p "${PROFILE}" ip)"
ALLOW=""
if [[ "${PROFILE}" != "minikube" ]]; then
    ALLOW=" --allow-context ${PROFILE}"
fi
cat <<DONE
minikube-up: ready. Next:
  resil deploy --context ${PROFILE}${ALLOW}
  curl -i http://${NODE_IP}:${NODE_PORT}/
DONE
