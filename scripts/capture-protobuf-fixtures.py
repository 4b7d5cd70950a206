#!/usr/bin/env python3
"""Captures the protobuf request bodies kubectl sends for built-in kinds, as fixtures for the
lab's protobuf decoder (crates/lab/tests/fixtures/protobuf/NAME.pb), each beside the JSON
the same command prints with `--dry-run=client -o json` (NAME.json).

Run against a running lab (`resil lab up`): the body is read from kubectl's `-v=9` log, so
it is captured whether or not the server accepts it.

    scripts/capture-protobuf-fixtures.py --context resil-lab
"""

import argparse
import json
import pathlib
import re
import subprocess
import sys

OUT = pathlib.Path(__file__).resolve().parent.parent / "crates/lab/tests/fixtures/protobuf"

# name -> kubectl arguments (namespace "default"); each sends one protobuf create.
COMMANDS = {
    "namespace": ["create", "namespace", "pb-fixture"],
    "deployment": ["create", "deployment", "web", "--image=nginx:1.27", "--replicas=0",
                   "--port=8080"],
    "service-clusterip": ["create", "service", "clusterip", "web", "--tcp=80:8080"],
    "service-nodeport": ["create", "service", "nodeport", "np", "--tcp=80", "--node-port=30080"],
    "configmap": ["create", "configmap", "settings", "--from-literal=mode=fast",
                  "--from-literal=empty="],
    "secret": ["create", "secret", "generic", "creds", "--from-literal=password=hunter2"],
    "poddisruptionbudget": ["create", "poddisruptionbudget", "web", "--selector=app=web",
                            "--min-available=0"],
    "serviceaccount": ["create", "serviceaccount", "robot"],
}

LINE = re.compile(r"^\s*[0-9a-f]{8}\s+((?:[0-9a-f]{2}\s+){1,16})")


def request_body(log):
    """The bytes of the first `"Request Body" body=<` hex dump in a kubectl -v=9 log."""
    lines = log.splitlines()
    start = next(i for i, line in enumerate(lines) if '"Request Body" body=<' in line)
    out = bytearray()
    for line in lines[start + 1:]:
        if line.strip() == ">":
            break
        m = LINE.match(line)
        if not m:
            sys.exit(f"unexpected hex dump line: {line!r}")
        out += bytes.fromhex("".join(m.group(1).split()))
    return bytes(out)


def kubectl(context, args, *extra):
    cmd = ["kubectl", "--context", context, "-n", "default", *args, *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--context", default="resil-lab")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for name, cmd in COMMANDS.items():
        body = request_body(kubectl(args.context, cmd, "-v=9").stderr)
        if not body.startswith(b"k8s\0"):
            sys.exit(f"{name}: kubectl did not send protobuf")
        dry = kubectl(args.context, cmd, "--dry-run=client", "-o", "json")
        if dry.returncode != 0:
            sys.exit(f"{name}: {dry.stderr}")
        (OUT / f"{name}.pb").write_bytes(body)
        (OUT / f"{name}.json").write_text(json.dumps(json.loads(dry.stdout), indent=2) + "\n")
        print(f"{name}: {len(body)} bytes")


if __name__ == "__main__":
    main()
