#!/usr/bin/env bash
# Creates a kind cluster for the resil demo: NodePort 30080 mapped to 127.0.0.1:30080 on
# this machine, the demo image built and loaded into the node, metrics-server installed
# (with --kubelet-insecure-tls, which kind's self-signed kubelet certificates need) so the
# HPAs can scale. Safe to run again: an existing cluster is reused.
#
#   scripts/kind-up.sh              # cluster "resil" → context kind-resil
#   KIND_CLUSTER_NAME=demo scripts/kind-up.sh
#   SKIP_BUILD=1 scripts/kind-up.sh # reuse an image already built
#
# Then: resil deploy --context kind-resil && curl http://127.0.0.1:30080/
set -euo pipefail

CLUSTER="${KIND_CLUSTER_NAME:-resil}"
IMAGE="${IMAGE:-resil-demo:latest}"
NODE_PORT="${NODE_PORT:-30080}"
METRICS_SERVER_URL="${METRICS_SERVER_URL:-https://github.com/kubernetes-sigs/metrics-server/releases/latest/download/components.yaml}"

die() {
    echo "kind-up: $*" >&2
    exit 1
}

need() {
    command -v "$1" >/dev/null 2>&1 || die "$1 is not installed or not on PATH. $2"
}

need docker "Install Docker: https://docs.docker.com/get-docker/"
need kind "Install kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
need kubectl "Install kubectl: https://kubernetes.io/docs/tasks/tools/"
docker info >/dev/null 2>&1 || die "docker is installed but its daemon does not answer; start Docker and retry."

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

CONTEXT="kind-${CLUSTER}"

if kind get clusters 2>/dev/null | grep -qx "${CLUSTER}"; then
    echo "kind-up: cluster ${CLUSTER} exists; reusing it (NodePort ${NODE_PORT} reaches the host only if it was created by this script)"
else
    echo "kind-up: creating cluster ${CLUSTER} with NodePort ${NODE_PORT} mapped to 127.0.0.1:${NODE_PORT}"
    kind create cluster --name "${CLUSTER}" --wait 120s --config - <<KIND
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    extraPortMappings:
      - containerPort: ${NODE_PORT}
        hostPort: ${NODE_PORT}
        listenAddress: "127.0.0.1"
        protocol: TCP
KIND
fi

if [[ -z "${SKIP_BUILD:-}" ]]; then
    echo "kind-up: building ${IMAGE}"
    docker build -t "${IMAGE}" "${ROOT}"
fi
echo "kind-up: loading ${IMAGE} into the node"
kind load docker-image "${IMAGE}" --name "${CLUSTER}"

echo "kind-up: installing metrics-server"
kubectl --context "${CONTEXT}" apply -f "${METRICS_SERVER_URL}"
if ! kubectl --context "${CONTEXT}" -n kube-system get deployment metrics-server \
    -o jsonpath='{.spec.template.spec.containers[0].args}' | grep -q -- '--kubelet-insecure-tls'; then
    kubectl --context "${CONTEXT}" -n kube-system patch deployment metrics-server --type=json \
        -p '[{"op":"add","path":"/spec/template/spec/containers/0/args/-","value":"--kubelet-insecure-tls"}]'
fi
kubectl --context "${CONTEXT}" -n kube-system rollout status deployment metrics-server --timeout=180s

cat <<DONE
kind-up: ready. Next:
  resil deploy --context ${CONTEXT}
  curl -i http://127.0.0.1:${NODE_PORT}/
DONE
