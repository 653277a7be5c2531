#!/usr/bin/python3
"""Offline validation of the Kubernetes manifests in deploy/k8s (no cluster needed).

Parses every document and checks what a cluster would only reveal at run time: the kinds and API
versions, selectors that must match pod labels, Services that must reach a declared container
port, probes on the port each binary listens on, every flag (args and ConfigMap flagfiles) against
the flags the real binaries accept (their --helpfull), addresses that must name a Service and its
port, volumes, Secrets and environment references, resources, and the NetworkPolicies' selectors.
Ends with a line "N passed, N failed".
"""

import glob
import os
import re
import subprocess
import sys

import yaml

RUNFILES = os.path.join(os.environ.get("TEST_SRCDIR", "."), "dpfleet")
K8S = os.path.join(RUNFILES, "deploy", "k8s")
BINARIES = {
    "dpfleet-accountant": "accountant/dpfleet-accountant",
    "dpfleet-coordinator": "coordinator/dpfleet-coordinator",
    "dpfleet-worker": "worker/dpfleet-worker",
}
API_VERSIONS = {
    "ConfigMap": "v1",
    "Service": "v1",
    "StatefulSet": "apps/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
}
# Created by the operator (README.md, "Running on a cluster"), never committed: they hold keys.
SECRETS = {
    "dpfleet-ca": {"ca.pem", "ticket.pub"},
    "dpfleet-accountant-tls": {"cert.pem", "key.pem", "ticket.key"},
    "dpfleet-coordinator-tls": {"cert.pem", "key.pem"},
    "dpfleet-worker-tls": {"cert.pem", "key.pem"},
}
TLS_FLAGS = ("tls_ca", "tls_cert", "tls_key")
# The files each binary must be given from a Secret: its TLS files, and the ticket keys (the
# accountant signs admission tickets, the workers check them).
SECRET_FILE_FLAGS = {
    "dpfleet-accountant": TLS_FLAGS + ("ticket_key",),
    "dpfleet-coordinator": TLS_FLAGS,
    "dpfleet-worker": TLS_FLAGS + ("ticket_public_key",),
}
PRIVATE_KEY_FLAGS = ("tls_key", "ticket_key")  # The binaries refuse them when anyone may read.
OPTIONAL_FILES = {"workers-gpu.yaml"}  # Applied by hand, still validated.

failures = []
checks = 0


def check(condition, message):
    global checks
    checks += 1
    if not condition:
        failures.append(message)
        print("FAIL: " + message)


def load_documents():
    documents = []
    for path in sorted(glob.glob(os.path.join(K8S, "*.yaml"))):
        name = os.path.basename(path)
        if name == "kustomization.yaml":
            continue
        with open(path) as f:
            for document in yaml.safe_load_all(f):
                if document is not None:
                    documents.append((name, document))
    return documents


def binary_flags(binary):
    """The flags `binary` accepts, from its --helpfull output."""
    output = subprocess.run([os.path.join(RUNFILES, BINARIES[binary]), "--helpfull"],
                            capture_output=True, text=True, timeout=120)
    text = output.stdout + output.stderr
    return set(re.findall(r"^\s+--(\w+)", text, re.MULTILINE))


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def flag_pairs(lines):
    """(name, value) of every --name=value or --name value in `lines`."""
    pairs = []
    i = 0
    while i < len(lines):
        item = lines[i]
        if item.startswith("--"):
            if "=" in item:
                name, value = item[2:].split("=", 1)
            else:
                name = item[2:]
                value = lines[i + 1] if i + 1 < len(lines) and not lines[i + 1].startswith("--") else ""
                i += 1 if value else 0
            pairs.append((name, value))
        i += 1
    return pairs


def main():
    documents = load_documents()
    check(documents, "no manifests under deploy/k8s")
    with open(os.path.join(K8S, "kustomization.yaml")) as f:
        kustomization = yaml.safe_load(f)
    files = {os.path.basename(p) for p in glob.glob(os.path.join(K8S, "*.yaml"))} - {
        "kustomization.yaml"}
    check(set(kustomization["resources"]) == files - OPTIONAL_FILES,
          "kustomization.yaml must list every manifest but %s: lists %s, found %s" %
          (sorted(OPTIONAL_FILES), sorted(kustomization["resources"]), sorted(files)))

    by_kind = {}
    for file, document in documents:
        kind = document.get("kind")
        name = document.get("metadata", {}).get("name")
        where = "%s: %s %s" % (file, kind, name)
        check(kind in API_VERSIONS, "%s: unexpected kind" % where)
        check(document.get("apiVersion") == API_VERSIONS.get(kind),
              "%s: apiVersion %s, expected %s" % (where, document.get("apiVersion"),
                                                  API_VERSIONS.get(kind)))
        check(bool(name), "%s: metadata.name is missing" % file)
        by_kind.setdefault(kind, {})
        check(name not in by_kind[kind], "%s: defined twice" % where)
        by_kind[kind][name] = (file, document)

    services = by_kind.get("Service", {})
    config_maps = by_kind.get("ConfigMap", {})
    statefulsets = by_kind.get("StatefulSet", {})
    flags_of = {binary: binary_flags(binary) for binary in BINARIES}
    for binary, flags in flags_of.items():
        check("listen" in flags, "%s --helpfull lists no --listen (got %d flags)" %
              (binary, len(flags)))

    pod_labels = []  # Labels of every pod template, with its container ports.
    for name, (file, statefulset) in statefulsets.items():
        where = "%s: StatefulSet %s" % (file, name)
        spec = statefulset["spec"]
        template = spec["template"]
        labels = template["metadata"]["labels"]
        check(matches(spec["selector"]["matchLabels"], labels),
              "%s: selector %s does not match its pod labels %s" %
              (where, spec["selector"]["matchLabels"], labels))
        service = services.get(spec.get("serviceName"))
        check(service is not None, "%s: serviceName %s names no Service" %
              (where, spec.get("serviceName")))
        if service is not None:
            check(service[1]["spec"].get("clusterIP") == "None",
                  "%s: its Service %s must be headless (stable pod names)" %
                  (where, spec["serviceName"]))
        component = labels.get("app.kubernetes.io/component")
        if component in ("accountant", "coordinator"):
            check(spec.get("replicas") == 1,
                  "%s: the %s owns its SQLite file and must run one replica" % (where, component))
            check(spec.get("volumeClaimTemplates"),
                  "%s: the %s's state needs a PersistentVolumeClaim" % (where, component))
        pod = template["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        claims = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
        check(not (set(volumes) & claims), "%s: a volume and a claim share a name" % where)
        ports = set()
        for container in pod["containers"]:
            cwhere = "%s container %s" % (where, container["name"])
            command = container.get("command", [None])[0]
            check(command in BINARIES, "%s: command %s is not a dpfleet server" % (cwhere, command))
            declared = {p["containerPort"]: p.get("name") for p in container.get("ports", [])}
            ports |= {(p, n) for p, n in declared.items()}
            env = {e["name"] for e in container.get("env", [])}
            args = container.get("args", [])
            for arg in args:
                for reference in re.findall(r"\$\((\w+)\)", arg):
                    check(reference in env, "%s: %s uses $(%s), which env does not define" %
                          (cwhere, arg, reference))
            pairs = flag_pairs(args)
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            for mount_name in mounts.values():
                check(mount_name in volumes or mount_name in claims,
                      "%s: volumeMount %s names no volume or claim" % (cwhere, mount_name))
            for flag, value in list(pairs):
                if flag != "flagfile":
                    continue
                directory, key = os.path.split(value)
                volume = volumes.get(mounts.get(directory))
                check(volume is not None and "configMap" in volume,
                      "%s: --flagfile %s is not in a mounted ConfigMap" % (cwhere, value))
                if volume is None or "configMap" not in volume:
                    continue
                config = config_maps.get(volume["configMap"]["name"])
                check(config is not None and key in config[1].get("data", {}),
                      "%s: ConfigMap %s has no key %s" % (cwhere, volume["configMap"]["name"], key))
                if config is not None and key in config[1].get("data", {}):
                    lines = [l.strip() for l in config[1]["data"][key].splitlines() if l.strip()]
                    for line in lines:
                        check(re.match(r"^--\w+=", line), "%s: flagfile line %r is not --flag=value" %
                              (cwhere, line))
                    pairs += flag_pairs(lines)
            if command not in BINARIES:
                continue
            values = {}
            for flag, value in pairs:
                check(flag in flags_of[command] or flag == "flagfile",
                      "%s: %s has no flag --%s" % (cwhere, command, flag))
                values[flag] = value
            listen = values.get("listen", "")
            check(re.match(r"^0\.0\.0\.0:\d+$", listen),
                  "%s: --listen %r must be 0.0.0.0:PORT (reachable, fixed port)" % (cwhere, listen))
            listen_port = int(listen.rsplit(":", 1)[1]) if re.match(r".*:\d+$", listen) else None
            check(listen_port in declared, "%s: listens on %s but declares ports %s" %
                  (cwhere, listen_port, sorted(declared)))
            health = values.get("health_listen", "")
            check(re.match(r"^0\.0\.0\.0:\d+$", health),
                  "%s: --health_listen %r must be 0.0.0.0:PORT (kubelet probes it)" % (cwhere, health))
            health_port = int(health.rsplit(":", 1)[1]) if re.match(r".*:\d+$", health) else None
            check(health_port in declared, "%s: health port %s is not declared (ports %s)" %
                  (cwhere, health_port, sorted(declared)))
            for probe in ("readinessProbe", "livenessProbe"):
                grpc_probe = container.get(probe, {}).get("grpc")
                check(grpc_probe is not None and grpc_probe.get("port") == health_port,
                      "%s: %s must be a gRPC probe of the health port %s" %
                      (cwhere, probe, health_port))
            for flag in ("accountant", "coordinator"):
                if flag not in values:
                    continue
                host, _, port = values[flag].rpartition(":")
                target = services.get(host)
                check(target is not None and
                      int(port) in [p["port"] for p in target[1]["spec"]["ports"]],
                      "%s: --%s=%s names no Service with that port" % (cwhere, flag, values[flag]))
            for flag in SECRET_FILE_FLAGS[command]:
                check(flag in values, "%s: --%s is missing (mutual TLS on every channel, "
                      "admission tickets on every step)" % (cwhere, flag))
                if flag not in values:
                    continue
                directory, key = os.path.split(values[flag])
                volume = volumes.get(mounts.get(directory))
                check(volume is not None and "secret" in volume,
                      "%s: --%s=%s is not in a mounted Secret" % (cwhere, flag, values[flag]))
                if volume is not None and "secret" in volume:
                    secret = volume["secret"]["secretName"]
                    check(key in SECRETS.get(secret, set()),
                          "%s: --%s reads %s from Secret %s, which holds %s" %
                          (cwhere, flag, key, secret, sorted(SECRETS.get(secret, []))))
                    if flag in PRIVATE_KEY_FLAGS:
                        mode = volume["secret"].get("defaultMode", 0o644)
                        check(mode & 0o007 == 0, "%s: the key's Secret has mode %o: the binaries "
                              "refuse a key anyone may read" % (cwhere, mode))
                        check(pod.get("securityContext", {}).get("fsGroup") is not None,
                              "%s: a non-root pod needs fsGroup to read its 0400 key" % cwhere)
            for flag in ("ledger", "jobs_db"):
                if flag in values:
                    directory = os.path.dirname(values[flag])
                    check(mounts.get(directory) in claims,
                          "%s: --%s must be on a PersistentVolumeClaim" % (cwhere, flag))
            requests = container.get("resources", {}).get("requests", {})
            check("cpu" in requests and "memory" in requests,
                  "%s: needs cpu and memory requests" % cwhere)
            if values.get("collective") == "nccl":
                limits = container.get("resources", {}).get("limits", {})
                check(limits.get("nvidia.com/gpu") == 1,
                      "%s: an NCCL worker needs an nvidia.com/gpu limit of 1" % cwhere)
                check("NCCL_SOCKET_IFNAME" in env, "%s: NCCL workers need NCCL_SOCKET_IFNAME" %
                      cwhere)
            if command == "dpfleet-worker":
                check("POD_IP" in values.get("collective_host", ""),
                      "%s: a worker's collective address must be its pod's IP" % cwhere)
        pod_labels.append((labels, ports))

    for name, (file, service) in services.items():
        where = "%s: Service %s" % (file, name)
        selected = [p for labels, p in pod_labels if matches(service["spec"]["selector"], labels)]
        check(selected, "%s: selector %s matches no pod" % (where, service["spec"]["selector"]))
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for ports in selected:
                check(any(target in (number, port_name) for number, port_name in ports),
                      "%s: targetPort %s is no container port of its pods" % (where, target))

    client_label = {"dpfleet.io/client": "true"}
    for name, (file, policy) in by_kind.get("NetworkPolicy", {}).items():
        where = "%s: NetworkPolicy %s" % (file, name)
        selector = policy["spec"]["podSelector"]["matchLabels"]
        targets = [p for labels, p in pod_labels if matches(selector, labels)]
        check(targets, "%s: podSelector %s matches no pod" % (where, selector))
        for rule in policy["spec"].get("ingress", []):
            for source in rule.get("from", []):
                labels = source["podSelector"]["matchLabels"]
                check(labels == client_label or any(matches(labels, l) for l, _ in pod_labels),
                      "%s: from %s matches no dpfleet pod and is not the client label" %
                      (where, labels))
            for port in rule.get("ports", []):
                check(all(any(port["port"] == n for n, _ in ports) for ports in targets),
                      "%s: allows port %s, which its pods do not serve" % (where, port["port"]))
    components = {labels.get("app.kubernetes.io/component") for labels, _ in pod_labels}
    covered = {policy["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/component")
               for _, policy in by_kind.get("NetworkPolicy", {}).values()}
    check(components <= covered, "components without a NetworkPolicy: %s" %
          sorted(components - covered))

    print("%d passed, %d failed" % (checks - len(failures), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
