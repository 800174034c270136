"""Renders the chart with the given values (a JSON file) and writes what `podman kube play`
(podman 4.3) can run, adapted where podman differs from Kubernetes, and only there:

- `secret.yaml`: the chart's Secret with its values as plain text under `data` (podman writes a
  Secret's `data` to the volume's files without decoding it, and ignores `stringData`);
- `migrate.yaml`: the migration Job's pod template as a Pod that runs once (podman plays no Jobs);
- `deployments.yaml`: every Deployment, unchanged.

Services, NetworkPolicies, RBAC and the data stores' StatefulSets are not played (podman has no
cluster network or API server); `deploy/tests/test_chart.py` checks them.

Usage: podman_manifests.py VALUES.json RELEASE NAMESPACE OUT_DIR
"""

import json
import os
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_chart import render  # noqa: E402


def main(values_path, release, namespace, out):
    with open(values_path) as file:
        values = json.load(file)
    objects = [resource for _, resource in render(values, name=release, namespace=namespace)]
    deployments = [resource for resource in objects if resource["kind"] == "Deployment"]
    secrets = []
    for resource in objects:
        if resource["kind"] == "Secret":
            secret = dict(resource)
            secret["data"] = secret.pop("stringData")
            secrets.append(secret)
    (job,) = [resource for resource in objects if resource["kind"] == "Job"]
    template = job["spec"]["template"]
    migrate = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": job["metadata"]["name"], "labels": template["metadata"].get("labels", {})},
        "spec": dict(template["spec"], restartPolicy="Never"),
    }
    for name, documents in [("secret.yaml", secrets), ("migrate.yaml", [migrate]), ("deployments.yaml", deployments)]:
        with open(os.path.join(out, name), "w") as file:
            yaml.safe_dump_all(documents, file)
    print(json.dumps({"deployments": [d["metadata"]["name"] for d in deployments], "secrets": [s["metadata"]["name"] for s in secrets]}))


if __name__ == "__main__":
    main(*sys.argv[1:])
