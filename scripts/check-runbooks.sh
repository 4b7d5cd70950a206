#!/usr/bin/env bash
# Runs every runbook command that works on the lab — the slow ones too (the HPA scale-up,
# `resil run scenarios/autoscale.yaml`) — each runbook in a private HOME, XDG dirs and
# KUBECONFIG with its own lab. The test suite runs the fast ones on every build; this is
# the whole walk-through, about five minutes. Commands for real clusters only (kind,
# minikube, CI) are parsed with the real CLI, not run. Prints every command and its
# output, so expected output in a runbook can be refreshed from it.
#
#   scripts/check-runbooks.sh
#   scripts/check-runbooks.sh -E 'test(/runbook_cost/)'   # one runbook
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "check-runbooks: cargo-nextest is needed: cargo install cargo-nextest --locked" >&2
    exit 2
fi

filter=(-E 'test(/^runbooks::/)')
if [[ $# -gt 0 ]]; then
    filter=("$@")
fi
# One runbook at a time: each deploys the demo, whose NodePort (127.0.0.1:30080) only one
# lab can hold.
RESIL_RUNBOOKS_FULL=1 exec cargo nextest run --no-capture --test-threads 1 "${filter[@]}"
