"""The Tiltfile, run with starlark-go (the dialect Tilt uses) after stubs of the Tilt builtins it
calls (tilt_stubs.star), and the kind configuration checked against a schema of kind's
v1alpha4 Cluster (kind_schema.json, from kind's Go types). Run by `make test-deploy`."""

import pathlib
import sys
import unittest

import helm_python
import jsonschema
import starlark_go
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
HERE = pathlib.Path(__file__).resolve().parent
# The dialect Tilt runs: top-level if and for, sets, recursion.
starlark_go.configure_starlark(allow_set=True, allow_global_reassign=True, allow_recursion=True)


def run_tiltfile():
    interpreter = starlark_go.Starlark()
    source = (HERE / "tilt_stubs.star").read_text() + "\n" + (ROOT / "Tiltfile").read_text()
    interpreter.exec(source, filename="Tiltfile")
    return interpreter.eval("calls")


class TiltfileTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.calls = run_tiltfile()

    def of(self, builtin):
        return [call["arguments"] for call in self.calls if call["builtin"] == builtin]

    def test_it_only_ever_talks_to_the_kind_cluster(self):
        self.assertEqual(self.of("allow_k8s_contexts"), [{"contexts": ["kind-codesync"]}])

    def test_images_are_built_from_files_that_exist(self):
        for build in self.of("docker_build"):
            self.assertTrue((ROOT / build["context"]).is_dir(), build)
            dockerfile = ROOT / build["dockerfile"]
            self.assertTrue(dockerfile.is_file(), build)
            if build["target"]:
                self.assertIn(f" AS {build['target']}", dockerfile.read_text(), build)
        refs = {build["ref"] for build in self.of("docker_build")}
        values = yaml.safe_load((ROOT / "deploy/kind/values.yaml").read_text())
        self.assertIn(values["image"]["repository"], refs)
        self.assertIn(values["execution"]["runnerImage"].split(":")[0], refs)

    def test_every_resource_it_names_is_a_workload_of_the_chart(self):
        (chart,) = self.of("helm")
        for path in chart["values"]:
            self.assertTrue((ROOT / path).is_file(), path)
        values = yaml.safe_load((ROOT / chart["values"][0]).read_text())
        loaded = helm_python.Chart.load(str(ROOT / chart["path"]))
        try:
            rendered = loaded.render(values=values, name=chart["name"], namespace=chart["namespace"], is_install=True)
        finally:
            loaded.close()
        workloads = set()
        for path, text in rendered.items():
            if path.endswith("NOTES.txt"):
                continue
            for document in yaml.safe_load_all(text):
                if document and document["kind"] in ("Deployment", "StatefulSet", "Job"):
                    workloads.add(document["metadata"]["name"])
        named = {resource["workload"] for resource in self.of("k8s_resource")}
        self.assertEqual(named - workloads, set(), "names the chart does not render")
        self.assertEqual(workloads - named, set(), "workloads left ungrouped")
        forwards = [forward for resource in self.of("k8s_resource") for forward in resource["port_forwards"]]
        self.assertIn("8081:8080", forwards)
        # The ingress has the host's 8080 (deploy/kind/cluster.yaml): nothing forwards there.
        self.assertNotIn("8080", [forward.split(":")[0] for forward in forwards])

    def test_resources_depend_only_on_resources_that_exist(self):
        names = {resource["workload"] for resource in self.of("k8s_resource")}
        names |= {resource["name"] for resource in self.of("local_resource")}
        for resource in self.of("k8s_resource") + self.of("local_resource"):
            for dependency in resource["resource_deps"]:
                self.assertIn(dependency, names)

    def test_a_typo_in_the_tiltfile_fails(self):
        interpreter = starlark_go.Starlark()
        source = (HERE / "tilt_stubs.star").read_text() + "\nk8s_resourse('codesync-gateway')\n"
        with self.assertRaises(starlark_go.StarlarkError):
            interpreter.exec(source, filename="Tiltfile")


class KindConfigTest(unittest.TestCase):
    def test_the_cluster_configuration_matches_kinds_schema(self):
        schema = yaml.safe_load((HERE / "kind_schema.json").read_text())
        configuration = yaml.safe_load((ROOT / "deploy/kind/cluster.yaml").read_text())
        jsonschema.validate(configuration, schema)
        mapped = {mapping["containerPort"] for mapping in configuration["nodes"][0]["extraPortMappings"]}
        self.assertEqual(mapped, {80, 443}, "the ingress controller's ports reach the host")
        with self.assertRaises(jsonschema.ValidationError):
            jsonschema.validate({**configuration, "node": []}, schema)


if __name__ == "__main__":
    sys.exit(unittest.main())
