"""The Helm chart, checked offline (no cluster here): `helm lint --strict` and rendering through
helm-python-sdk with the default, high-availability and minimal values; every object validated
against the Kubernetes schemas of the oldest and newest supported versions; the security
properties of every pod; and values the schema must refuse. Run by `make test-deploy`.
"""

import copy
import pathlib
import sys
import unittest

import helm_python
import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "codesync"
EXAMPLES = ROOT / "deploy" / "helm" / "examples"
# The oldest (Chart.yaml's kubeVersion) and the newest Kubernetes the chart supports.
KUBERNETES_VERSIONS = ["1.29.0", "1.33.0"]
SERVICES = ["auth", "rooms", "documents", "presence", "history", "execution", "assistant", "notifications", "analytics"]
WORKLOADS = {"Deployment", "StatefulSet", "Job", "DaemonSet"}


def render(values=None, name="cs", namespace="codesync"):
    chart = helm_python.Chart.load(str(CHART))
    try:
        manifests = chart.render(values=values or {}, name=name, namespace=namespace, is_install=True)
    finally:
        chart.close()
    objects = []
    for path, text in manifests.items():
        if path.endswith("NOTES.txt"):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                document.setdefault("metadata", {}).setdefault("namespace", namespace)
                objects.append((path, document))
    return objects


def example(name):
    return yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())


def pod_spec(resource):
    if resource["kind"] == "Job":
        return resource["spec"]["template"]["spec"]
    return resource["spec"]["template"]["spec"]


def named(objects, kind, name):
    for _, resource in objects:
        if resource["kind"] == kind and resource["metadata"]["name"] == name:
            return resource
    raise AssertionError(f"no {kind} {name}")


class ChartTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.rendered = {
            "default": render(),
            "high-availability": render(example("high-availability")),
            "minimal": render(example("minimal")),
        }

    def test_lint_strict_passes(self):
        for values in [None, example("high-availability"), example("minimal")]:
            for version in KUBERNETES_VERSIONS:
                report = helm_python.lint(str(CHART), values, strict=True, kube_version=f"v{version}")
                self.assertEqual(report["errors"], [], report)
                # Severity 1 is information (an icon is recommended); warnings and errors fail.
                serious = [message for message in report["messages"] if message["severity"] > 1]
                self.assertEqual(serious, [], report)

    def test_every_object_is_valid_for_each_supported_kubernetes(self):
        for name, objects in self.rendered.items():
            for path, resource in objects:
                if resource["apiVersion"].startswith("monitoring.coreos.com"):
                    continue  # a custom resource: no schema in Kubernetes itself
                for version in KUBERNETES_VERSIONS:
                    with self.subTest(values=name, path=path, object=resource["metadata"]["name"], version=version):
                        kubernetes_validate.validate(resource, version, strict=True)

    def test_one_deployment_service_and_budget_per_component(self):
        objects = self.rendered["default"]
        for component in ["gateway", *SERVICES]:
            deployment = named(objects, "Deployment", f"cs-codesync-{component}")
            container = pod_spec(deployment)["containers"][0]
            self.assertEqual(container["args"], ["run", "--service", component])
            service = named(objects, "Service", f"cs-codesync-{component}")
            named(objects, "PodDisruptionBudget", f"cs-codesync-{component}")
            # Every component's figures on the metrics port, which the ServiceMonitor scrapes.
            self.assertIn({"name": "metrics", "port": 9090, "targetPort": 9090}, service["spec"]["ports"])
            env = {e["name"]: e.get("value") for e in container["env"]}
            self.assertEqual(env["CODESYNC_METRICS_ADDR"], "0.0.0.0:9090")
            if component == "gateway":
                self.assertEqual(container["readinessProbe"]["httpGet"]["path"], "/readyz")
                self.assertEqual(container["livenessProbe"]["httpGet"]["path"], "/healthz")
            else:
                self.assertEqual(container["readinessProbe"]["grpc"]["port"], 50051)
        ha = self.rendered["high-availability"]
        self.assertEqual(named(ha, "Deployment", "cs-codesync-documents")["spec"]["replicas"], 3)
        self.assertNotIn("replicas", named(ha, "Deployment", "cs-codesync-gateway")["spec"], "the autoscaler decides")
        named(ha, "HorizontalPodAutoscaler", "cs-codesync-gateway")
        minimal = self.rendered["minimal"]
        self.assertFalse([r for _, r in minimal if r["kind"] == "PodDisruptionBudget"])

    def test_every_pod_is_restricted(self):
        for name, objects in self.rendered.items():
            for _, resource in objects:
                if resource["kind"] not in WORKLOADS:
                    continue
                with self.subTest(values=name, workload=resource["metadata"]["name"]):
                    spec = pod_spec(resource)
                    pod = spec.get("securityContext", {})
                    self.assertTrue(pod.get("runAsNonRoot"), "runAsNonRoot")
                    self.assertNotEqual(pod.get("runAsUser"), 0)
                    self.assertEqual(pod.get("seccompProfile", {}).get("type"), "RuntimeDefault")
                    self.assertFalse(spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"))
                    for volume in spec.get("volumes", []):
                        self.assertNotIn("hostPath", volume)
                    for container in spec.get("initContainers", []) + spec["containers"]:
                        context = container.get("securityContext", {})
                        self.assertIs(context.get("allowPrivilegeEscalation"), False, container["name"])
                        self.assertIs(context.get("readOnlyRootFilesystem"), True, container["name"])
                        self.assertEqual(context.get("capabilities", {}).get("drop"), ["ALL"], container["name"])
                        self.assertFalse(context.get("privileged"), container["name"])
                        limits = container.get("resources", {}).get("limits", {})
                        self.assertIn("cpu", limits, container["name"])
                        self.assertIn("memory", limits, container["name"])
                    # No API token anywhere but the execution service.
                    component = resource["metadata"]["labels"].get("app.kubernetes.io/component")
                    if component == "execution":
                        self.assertEqual(spec["serviceAccountName"], "cs-codesync-execution")
                    else:
                        self.assertIs(spec.get("automountServiceAccountToken"), False)

    def test_only_the_auth_service_holds_the_signing_key(self):
        for _, resource in self.rendered["default"]:
            if resource["kind"] not in WORKLOADS:
                continue
            keys = [
                item["key"]
                for volume in pod_spec(resource).get("volumes", [])
                for item in volume.get("secret", {}).get("items", [])
            ]
            component = resource["metadata"]["labels"].get("app.kubernetes.io/component")
            self.assertEqual("jwt-signing-key" in keys, component == "auth", resource["metadata"]["name"])

    def test_only_the_execution_account_can_create_jobs_and_only_in_the_runs_namespace(self):
        objects = self.rendered["default"]
        roles = {
            (r["metadata"]["namespace"], r["metadata"]["name"]): r
            for _, r in objects
            if r["kind"] in ("Role", "ClusterRole")
        }
        can_create_jobs = set()
        for _, binding in objects:
            if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
                continue
            self.assertEqual(binding["kind"], "RoleBinding", "no cluster-wide rights")
            role = roles[(binding["metadata"]["namespace"], binding["roleRef"]["name"])]
            creates = any(
                "batch" in rule.get("apiGroups", [])
                and "jobs" in rule.get("resources", [])
                and ("create" in rule.get("verbs", []) or "*" in rule.get("verbs", []))
                for rule in role["rules"]
            )
            if creates:
                self.assertEqual(binding["metadata"]["namespace"], "codesync-runs")
                for subject in binding["subjects"]:
                    can_create_jobs.add(subject["name"])
        self.assertEqual(can_create_jobs, {"cs-codesync-execution"})
        isolation = named(objects, "NetworkPolicy", "cs-codesync-runs-isolated")
        self.assertEqual(isolation["metadata"]["namespace"], "codesync-runs")
        self.assertEqual(isolation["spec"], {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})

    def test_services_take_grpc_only_from_codesync_and_stores_only_from_codesync(self):
        objects = self.rendered["default"]
        services = named(objects, "NetworkPolicy", "cs-codesync-services")
        selected = services["spec"]["podSelector"]["matchExpressions"][1]["values"]
        self.assertEqual(sorted(selected), sorted(SERVICES))
        sources = services["spec"]["ingress"][0]["from"][0]["podSelector"]["matchExpressions"][1]["values"]
        self.assertEqual(sorted(sources), sorted(["gateway", *SERVICES]))
        for store in ["postgresql", "redis", "kafka"]:
            policy = named(objects, "NetworkPolicy", f"cs-codesync-{store}")
            source = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
            self.assertEqual(source["app.kubernetes.io/part-of"], "codesync")

    def test_jobs_restart_as_kubernetes_allows(self):
        for _, resource in self.rendered["default"]:
            if resource["kind"] == "Job":
                self.assertIn(pod_spec(resource)["restartPolicy"], ("Never", "OnFailure"))

    def test_every_service_selects_pods_that_exist(self):
        for name, objects in self.rendered.items():
            pods = [
                r["spec"]["template"]["metadata"]["labels"] for _, r in objects if r["kind"] in ("Deployment", "StatefulSet")
            ]
            for _, service in objects:
                if service["kind"] != "Service":
                    continue
                selector = service["spec"]["selector"]
                with self.subTest(values=name, service=service["metadata"]["name"]):
                    self.assertTrue(any(selector.items() <= labels.items() for labels in pods))

    def test_external_data_stores_replace_the_in_cluster_ones(self):
        objects = self.rendered["high-availability"]
        self.assertFalse([r for _, r in objects if r["kind"] == "StatefulSet"])
        env = {e["name"]: e for e in pod_spec(named(objects, "Deployment", "cs-codesync-rooms"))["containers"][0]["env"]}
        self.assertEqual(env["CODESYNC_REDIS_URL"]["value"], "redis://redis.data.svc:6379")
        self.assertIn("kafka-2.kafka.data.svc:9092", env["CODESYNC_KAFKA_BROKERS"]["value"])
        self.assertEqual(env["CODESYNC_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"], "database-url")
        self.assertFalse([r for _, r in objects if r["kind"] == "Secret"], "existingSecret: nothing generated")

    def test_an_external_store_without_its_address_fails_with_a_message(self):
        for values, words in [
            ({"postgresql": {"enabled": False}}, "postgresql.externalUrl"),
            ({"kafka": {"enabled": False}}, "kafka.externalBrokers"),
        ]:
            with self.subTest(values=values):
                with self.assertRaises(helm_python.HelmRenderError) as refusal:
                    render(copy.deepcopy(values))
                self.assertIn(words, str(refusal.exception))

    def test_kafka_brokers_know_their_node_ids_and_voters(self):
        objects = render({"kafka": {"replicas": 3}})
        kafka = named(objects, "StatefulSet", "cs-codesync-kafka")
        env = {e["name"]: e for e in pod_spec(kafka)["containers"][0]["env"]}
        self.assertEqual(
            env["KAFKA_NODE_ID"]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.labels['apps.kubernetes.io/pod-index']"
        )
        voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"]["value"].split(",")
        self.assertEqual([voter.split("@")[0] for voter in voters], ["0", "1", "2"])
        self.assertEqual(env["KAFKA_MIN_INSYNC_REPLICAS"]["value"], "2")

    def test_the_schema_refuses_typos_with_a_clear_message(self):
        for values, words in [
            ({"gateway": {"replica": 2}}, "replica"),
            ({"kafka": {"replicas": 2}}, "kafka/replicas"),
            ({"config": {"LOG_FORMAT": "json"}}, "LOG_FORMAT"),
            ({"postgresql": {"externalUrl": "mysql://x"}}, "externalUrl"),
        ]:
            with self.subTest(values=values):
                with self.assertRaises(helm_python.HelmValuesError) as refusal:
                    render(copy.deepcopy(values))
                self.assertIn(words, str(refusal.exception))


if __name__ == "__main__":
    sys.exit(unittest.main())
