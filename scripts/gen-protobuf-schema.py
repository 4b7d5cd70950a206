#!/usr/bin/env python3
"""Writes crates/lab/src/api/protobuf/schema.rs: the field table the lab's protobuf body
decoder walks (message -> field number -> JSON name, type, label).

Source: the upstream `generated.proto` files of k8s.io/api and k8s.io/apimachinery, read in
their compiled form, the gzipped FileDescriptorProtos that every Go client built from them
registers at start-up. kubectl carries them in its binary, so the table matches exactly the
kubectl release whose bodies the lab decodes (v1.32 here):

    scripts/gen-protobuf-schema.py [--kubectl PATH] > crates/lab/src/api/protobuf/schema.rs

The proto field names of these files are the JSON names (go-to-protobuf names them after
the json tag). What the .proto does not say is which Go fields are pointers: a Go client
writes every non-pointer scalar, zero or not, and a pointer only when set, so a zero on the
wire means "unset" unless the Go field is a pointer. KEEP_ZERO lists those pointer fields
(read from the types.go files beside each generated.proto); every other zero scalar is left
out, as Go's `omitempty` JSON leaves it out.
"""

import argparse
import re
import shutil
import sys
import zlib

# apiVersion, kind -> message, for every kind the lab serves or is about to serve.
ROOTS = [
    ("v1", "Namespace", "k8s.io.api.core.v1.Namespace"),
    ("v1", "Pod", "k8s.io.api.core.v1.Pod"),
    ("v1", "Service", "k8s.io.api.core.v1.Service"),
    ("v1", "Endpoints", "k8s.io.api.core.v1.Endpoints"),
    ("v1", "Event", "k8s.io.api.core.v1.Event"),
    ("v1", "ConfigMap", "k8s.io.api.core.v1.ConfigMap"),
    ("v1", "Secret", "k8s.io.api.core.v1.Secret"),
    ("v1", "Node", "k8s.io.api.core.v1.Node"),
    ("v1", "Binding", "k8s.io.api.core.v1.Binding"),
    ("v1", "ServiceAccount", "k8s.io.api.core.v1.ServiceAccount"),
    ("v1", "DeleteOptions", "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions"),
    ("apps/v1", "Deployment", "k8s.io.api.apps.v1.Deployment"),
    ("apps/v1", "ReplicaSet", "k8s.io.api.apps.v1.ReplicaSet"),
    ("autoscaling/v1", "Scale", "k8s.io.api.autoscaling.v1.Scale"),
    ("autoscaling/v2", "HorizontalPodAutoscaler",
     "k8s.io.api.autoscaling.v2.HorizontalPodAutoscaler"),
    ("coordination.k8s.io/v1", "Lease", "k8s.io.api.coordination.v1.Lease"),
    ("discovery.k8s.io/v1", "EndpointSlice", "k8s.io.api.discovery.v1.EndpointSlice"),
    ("events.k8s.io/v1", "Event", "k8s.io.api.events.v1.Event"),
    ("policy/v1", "PodDisruptionBudget", "k8s.io.api.policy.v1.PodDisruptionBudget"),
    ("policy/v1", "Eviction", "k8s.io.api.policy.v1.Eviction"),
    ("batch/v1", "Job", "k8s.io.api.batch.v1.Job"),
]

# Messages with their own JSON form (apimachinery's custom MarshalJSON).
SHAPES = {
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
    "k8s.io.apimachinery.pkg.api.resource.Quantity": "Quantity",
    "k8s.io.apimachinery.pkg.apis.meta.v1.Time": "Time",
    "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime",
    "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1": "RawJson",
    "k8s.io.apimachinery.pkg.runtime.RawExtension": "RawJson",
}

# Messages with a custom JSON form the decoder does not have yet.
UNSUPPORTED = {"k8s.io.apimachinery.pkg.apis.meta.v1.Duration"}

# Go pointer scalars (`*int32`, `*int64`, `*bool`, `*string`): a zero on the wire was set.
KEEP_ZERO = {
    "batch.v1.JobSpec": [
        "parallelism", "completions", "activeDeadlineSeconds", "backoffLimit",
        "backoffLimitPerIndex", "maxFailedIndexes", "manualSelector", "ttlSecondsAfterFinished",
        "completionMode", "suspend", "podReplacementPolicy", "managedBy",
    ],
    "batch.v1.JobStatus": ["ready", "terminating", "failedIndexes"],
    "batch.v1.PodFailurePolicyOnExitCodesRequirement": ["containerName"],
    "meta.v1.ObjectMeta": ["deletionGracePeriodSeconds"],
    "meta.v1.OwnerReference": ["controller", "blockOwnerDeletion"],
    "meta.v1.DeleteOptions": [
        "gracePeriodSeconds", "orphanDependents", "propagationPolicy",
        "ignoreStoreReadErrorWithClusterBreakingPotential",
    ],
    "meta.v1.ListMeta": ["remainingItemCount"],
    "core.v1.PodSpec": [
        "terminationGracePeriodSeconds", "activeDeadlineSeconds",
        "automountServiceAccountToken", "shareProcessNamespace", "priority",
        "enableServiceLinks", "hostUsers", "setHostnameAsFQDN", "preemptionPolicy",
        "runtimeClassName",
    ],
    "core.v1.PodSecurityContext": [
        "runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "fsGroupChangePolicy",
        "supplementalGroupsPolicy", "seLinuxChangePolicy",
    ],
    "core.v1.SecurityContext": [
        "privileged", "runAsUser", "runAsGroup", "runAsNonRoot", "readOnlyRootFilesystem",
        "allowPrivilegeEscalation", "procMount",
    ],
    "core.v1.Container": ["restartPolicy"],
    "core.v1.Probe": ["terminationGracePeriodSeconds"],
    "core.v1.GRPCAction": ["service"],
    "core.v1.ConfigMapVolumeSource": ["defaultMode", "optional"],
    "core.v1.SecretVolumeSource": ["defaultMode", "optional"],
    "core.v1.ProjectedVolumeSource": ["defaultMode"],
    "core.v1.DownwardAPIVolumeSource": ["defaultMode"],
    "core.v1.DownwardAPIVolumeFile": ["mode"],
    "core.v1.KeyToPath": ["mode"],
    "core.v1.ConfigMapKeySelector": ["optional"],
    "core.v1.SecretKeySelector": ["optional"],
    "core.v1.ConfigMapEnvSource": ["optional"],
    "core.v1.SecretEnvSource": ["optional"],
    "core.v1.ConfigMapProjection": ["optional"],
    "core.v1.SecretProjection": ["optional"],
    "core.v1.ServiceAccountTokenProjection": ["expirationSeconds"],
    "core.v1.HostPathVolumeSource": ["type"],
    "core.v1.Toleration": ["tolerationSeconds"],
    "core.v1.TopologySpreadConstraint": ["minDomains", "nodeAffinityPolicy", "nodeTaintsPolicy"],
    "core.v1.PodDNSConfigOption": ["value"],
    "core.v1.ServiceSpec": [
        "allocateLoadBalancerNodePorts", "loadBalancerClass", "internalTrafficPolicy",
        "ipFamilyPolicy", "trafficDistribution",
    ],
    "core.v1.ClientIPConfig": ["timeoutSeconds"],
    "core.v1.ServicePort": ["appProtocol"],
    "core.v1.EndpointPort": ["appProtocol"],
    "core.v1.EndpointAddress": ["nodeName"],
    "core.v1.LoadBalancerIngress": ["ipMode"],
    "core.v1.ConfigMap": ["immutable"],
    "core.v1.Secret": ["immutable"],
    "core.v1.ServiceAccount": ["automountServiceAccountToken"],
    "core.v1.PodStatus": ["resize"],
    "core.v1.ContainerStatus": ["started", "allocatedResources"],
    "apps.v1.DeploymentSpec": ["replicas", "revisionHistoryLimit", "progressDeadlineSeconds"],
    "apps.v1.DeploymentStatus": ["collisionCount"],
    "apps.v1.ReplicaSetSpec": ["replicas"],
    "apps.v1.RollingUpdateDeployment": ["maxUnavailable", "maxSurge"],
    "autoscaling.v2.HorizontalPodAutoscalerSpec": ["minReplicas"],
    "autoscaling.v2.HorizontalPodAutoscalerStatus": ["observedGeneration"],
    "autoscaling.v2.MetricTarget": ["averageUtilization"],
    "autoscaling.v2.MetricValueStatus": ["averageUtilization"],
    "autoscaling.v2.HPAScalingRules": ["stabilizationWindowSeconds", "selectPolicy"],
    "coordination.v1.LeaseSpec": [
        "holderIdentity", "leaseDurationSeconds", "leaseTransitions", "strategy",
        "preferredHolder",
    ],
    "discovery.v1.Endpoint": ["hostname", "nodeName", "zone"],
    "discovery.v1.EndpointConditions": ["ready", "serving", "terminating"],
    "discovery.v1.EndpointPort": ["name", "protocol", "port", "appProtocol"],
    "events.v1.Event": ["deprecatedCount"],
    "policy.v1.PodDisruptionBudgetSpec": [
        "minAvailable", "maxUnavailable", "unhealthyPodEvictionPolicy",
    ],
}

# The scalar types these messages use; another one stops the script (the decoder would
# need to learn it first).
SCALARS = {3: "Int64", 5: "Int32", 8: "Bool", 9: "String", 12: "Bytes"}


def varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return result, i


def fields(buf):
    """Yields (number, value) over one message; value is an int or bytes."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(buf, i)
        elif wire == 2:
            n, i = varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        yield number, value


def parse_message(buf, prefix, out):
    name, flds, nested, map_entry = None, [], [], False
    for number, value in fields(buf):
        if number == 1:
            name = value.decode()
        elif number == 2:
            flds.append(value)
        elif number == 3:
            nested.append(value)
        elif number == 7:
            map_entry = any(n == 7 and v == 1 for n, v in fields(value))
    full = f"{prefix}.{name}"
    parsed = []
    for f in flds:
        d = dict(fields(f))
        parsed.append({
            "name": d[1].decode(),
            "number": d[3],
            "repeated": d.get(4) == 3,
            "type": d[5],
            "type_name": d.get(6, b"").decode().lstrip("."),
        })
    out[full] = {"fields": parsed, "map_entry": map_entry}
    for n in nested:
        parse_message(n, full, out)


def descriptors(binary):
    data = open(binary, "rb").read()
    for m in re.finditer(rb"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff", data):
        try:
            raw = zlib.decompressobj(31).decompress(data[m.start():m.start() + 4_000_000])
        except zlib.error:
            continue
        d = dict((n, v) for n, v in fields(raw) if n in (1, 2))
        if d.get(1, b"").startswith(b"k8s.io/") and d[1].endswith(b"generated.proto"):
            yield raw


def load(binary):
    messages = {}
    for raw in descriptors(binary):
        package = dict((n, v) for n, v in fields(raw) if n == 2)[2].decode()
        for n, v in fields(raw):
            if n == 4:
                parse_message(v, package, messages)
    return messages


def reachable(messages):
    order, seen = [], set()
    todo = [r[2] for r in ROOTS]
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        if name not in messages:
            sys.exit(f"message {name} is not in the binary's descriptors")
        if name in UNSUPPORTED:
            sys.exit(f"{name} is reachable: teach the decoder its JSON form first")
        seen.add(name)
        order.append(name)
        if name in SHAPES:
            continue
        for f in messages[name]["fields"]:
            if f["type"] == 11:
                todo.append(f["type_name"])
    return order


def keep_zero(message, field):
    short = message.removeprefix("k8s.io.api.").removeprefix("k8s.io.apimachinery.pkg.apis.")
    return field in KEEP_ZERO.get(short, [])


def field_line(message, f, index, messages):
    if f["type"] == 11:
        target = messages[f["type_name"]]
        ty = f"Ty::Message({index[f['type_name']]})"
        label = "Map" if target["map_entry"] and f["repeated"] else (
            "Repeated" if f["repeated"] else "Single")
    elif f["type"] in SCALARS:
        ty = f"Ty::{SCALARS[f['type']]}"
        label = "Repeated" if f["repeated"] else "Single"
    else:
        sys.exit(f"{message}.{f['name']}: unsupported field type {f['type']}")
    keep = "true" if keep_zero(message, f["name"]) else "false"
    return (f"        Field {{ number: {f['number']}, json: {f['name']!r}, ty: {ty}, "
            f"label: Label::{label}, keep_zero: {keep} }},").replace("'", '"')


def render(messages, order):
    index = {name: i for i, name in enumerate(order)}
    missing = [f"{m}.{f}" for m, fs in KEEP_ZERO.items() for f in fs
               if not any(fl["name"] == f for n, msg in messages.items()
                          if n.endswith("." + m) for fl in msg["fields"])]
    for m in missing:
        print(f"note: KEEP_ZERO names {m}, which this release does not have", file=sys.stderr)
    out = [
        "//! The field table of the protobuf messages the lab decodes: written by",
        "//! `scripts/gen-protobuf-schema.py` from the upstream `generated.proto` files (as",
        "//! compiled into kubectl v1.32). Do not edit by hand; rerun the script.",
        "",
        "use super::wire::{Field, Label, Message, Shape, Ty};",
        "",
        "/// apiVersion, kind and the index of its message in [`MESSAGES`].",
        "#[rustfmt::skip]",
        "pub static ROOTS: &[(&str, &str, u16)] = &[",
    ]
    for api_version, kind, name in ROOTS:
        out.append(f'    ("{api_version}", "{kind}", {index[name]}),')
    out += ["];", "", "/// Every message reachable from [`ROOTS`].", "#[rustfmt::skip]",
            f"pub static MESSAGES: [Message; {len(order)}] = ["]
    for name in order:
        msg = messages[name]
        shape = SHAPES.get(name, "Plain")
        fields_sorted = sorted(msg["fields"], key=lambda f: f["number"])
        out.append(f"    Message {{ name: \"{name}\", shape: Shape::{shape}, fields: &[")
        out += [field_line(name, f, index, messages) for f in fields_sorted]
        out.append("    ] },")
    out.append("];")
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kubectl", default=shutil.which("kubectl"))
    args = parser.parse_args()
    if not args.kubectl:
        sys.exit("kubectl not found; pass --kubectl PATH")
    messages = load(args.kubectl)
    sys.stdout.write(render(messages, reachable(messages)))


if __name__ == "__main__":
    main()
