"""deploy/: the Kubernetes manifests and the CloudFormation templates, checked offline.

- `kubectl kustomize` renders the base and the local overlay (skipped without kubectl);
- the core kinds validate against the Kubernetes OpenAPI schemas of K8S_VERSION (the
  kubernetes-validate package ships them: no network), strictly (unknown fields fail);
- the KEDA objects validate against KEDA's CRD schemas kept in deploy/kubernetes/schemas/;
- invariants between the manifests and fanout itself (settings, probe paths, rules, grace period);
- cfn-lint passes on both templates, and the IAM policy holds exactly the actions
  docs/deploying/iam.md lists.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from fanout.config import Settings, env_name

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
CFN = ROOT / "deploy" / "cloudformation"
RULES = ROOT / "rules.yaml"
# The Kubernetes version the manifests are validated for (docs/deploying/kubernetes.md).
K8S_VERSION = "1.33"
# kubelet's SIGKILL must come this long after fanout's own shutdown bound, at least.
GRACE_MARGIN_SECONDS = 10
KEDA_CRDS = {
    "ScaledObject": KUBE / "schemas" / "keda.sh_scaledobjects.yaml",
    "TriggerAuthentication": KUBE / "schemas" / "keda.sh_triggerauthentications.yaml",
}
OVERLAYS = ["base", "overlays/local", "overlays/monitoring"]
# Custom resources: validated against their own schema (KEDA's CRDs here; the PrometheusRule's
# groups by promtool in test_operating.py), not the Kubernetes core schemas.
CUSTOM_GROUPS = ("keda.sh/", "monitoring.coreos.com/")

# ------------------------------------------------------------------------------------------
# Kubernetes


def kustomize(path: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: `kubectl kustomize` cannot render deploy/kubernetes")
    out = subprocess.run(
        [kubectl, "kustomize", str(KUBE / path)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return kustomize(request.param)


def one(docs: list[dict[str, Any]], kind: str, name_prefix: str = "") -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name_prefix)]
    assert len(found) == 1, f"{len(found)} {kind} named {name_prefix}*"
    return found[0]


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "fanout")


def environment(docs: list[dict[str, Any]]) -> dict[str, str]:
    """The fanout container's environment: its ConfigMaps (envFrom) overlaid with env."""
    env: dict[str, str] = {}
    for source in container(docs).get("envFrom", []):
        if "configMapRef" in source:
            env |= one(docs, "ConfigMap", source["configMapRef"]["name"])["data"]
    env |= {e["name"]: e["value"] for e in container(docs)["env"] if "value" in e}
    return env


def crd_schema(kind: str) -> dict[str, Any]:
    crd = yaml.safe_load(KEDA_CRDS[kind].read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["served"] and v["storage"]]
    return dict(version["schema"]["openAPIV3Schema"])


def test_both_render_with_every_kind(rendered: list[dict[str, Any]]) -> None:
    kinds = {doc["kind"] for doc in rendered}
    assert {
        "Deployment",
        "ConfigMap",
        "ServiceAccount",
        "PodDisruptionBudget",
        "ScaledObject",
        "TriggerAuthentication",
    } <= kinds


def test_core_kinds_validate_against_the_kubernetes_schemas(
    rendered: list[dict[str, Any]],
) -> None:
    core = [doc for doc in rendered if not doc["apiVersion"].startswith(CUSTOM_GROUPS)]
    assert len(core) >= 5
    for doc in core:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_monitoring_overlay_adds_the_prometheusrule_in_the_namespace() -> None:
    docs = kustomize("overlays/monitoring")
    rule = one(docs, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == one(docs, "Deployment")["metadata"]["namespace"]
    assert [r["alert"] for r in rule["spec"]["groups"][0]["rules"]]
    assert all(d["kind"] != "PrometheusRule" for d in kustomize("base"))


def test_the_kubernetes_validation_rejects_a_misspelt_field(
    rendered: list[dict[str, Any]],
) -> None:
    broken = copy.deepcopy(one(rendered, "Deployment"))
    broken["spec"]["template"]["spec"]["terminationGracePeriod"] = 45
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


@pytest.mark.parametrize("kind", sorted(KEDA_CRDS))
def test_keda_objects_validate_against_the_crd_schema(
    rendered: list[dict[str, Any]], kind: str
) -> None:
    jsonschema.validate(one(rendered, kind), crd_schema(kind))


def test_the_crd_schema_rejects_a_wrong_type(rendered: list[dict[str, Any]]) -> None:
    broken = copy.deepcopy(one(rendered, "ScaledObject"))
    broken["spec"]["minReplicaCount"] = "one"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, crd_schema("ScaledObject"))


def test_every_fanout_variable_is_a_setting(rendered: list[dict[str, Any]]) -> None:
    known = {env_name(field) for field in Settings.model_fields}
    used = {name for name in environment(rendered) if name.startswith("FANOUT_")}
    assert used, "no FANOUT_* variable in the Deployment"
    assert used - known == set()


def test_grace_period_exceeds_the_shutdown_bound(rendered: list[dict[str, Any]]) -> None:
    env = environment(rendered)
    bound = float(
        env.get("FANOUT_SHUTDOWN_TIMEOUT_SECONDS")
        or Settings.model_fields["shutdown_timeout_seconds"].default
    )
    grace = one(rendered, "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= bound + GRACE_MARGIN_SECONDS


def test_probes_ask_fanout_s_own_endpoints_on_its_port(rendered: list[dict[str, Any]]) -> None:
    served = set(
        re.findall(r'add_get\("([^"]+)"', (ROOT / "fanout/observability/health.py").read_text())
    )
    fanout = container(rendered)
    ports = {p["name"]: p["containerPort"] for p in fanout["ports"]}
    probes = {k: fanout[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    for probe in probes.values():
        assert probe["path"] in served
        assert ports[probe["port"]] == int(environment(rendered)["FANOUT_HTTP_PORT"])


def test_hardened_pod(rendered: list[dict[str, Any]]) -> None:
    pod = one(rendered, "Deployment")["spec"]["template"]["spec"]
    fanout = container(rendered)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert fanout["securityContext"]["readOnlyRootFilesystem"] is True
    assert fanout["securityContext"]["allowPrivilegeEscalation"] is False
    assert fanout["securityContext"]["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m["name"] for m in fanout["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert {"cpu", "memory"} <= set(fanout["resources"]["requests"])
    assert {"cpu", "memory"} <= set(fanout["resources"]["limits"])


def test_rules_are_mounted_where_fanout_reads_them(rendered: list[dict[str, Any]]) -> None:
    fanout = container(rendered)
    rules_path = Path(environment(rendered)["FANOUT_RULES"])
    mounts = {m["mountPath"]: m["name"] for m in fanout["volumeMounts"]}
    volume = next(
        v
        for v in one(rendered, "Deployment")["spec"]["template"]["spec"]["volumes"]
        if v["name"] == mounts[str(rules_path.parent)]
    )
    config_map = one(rendered, "ConfigMap", volume["configMap"]["name"])
    assert config_map["data"][rules_path.name] == RULES.read_text()


def test_every_rules_variable_and_the_queues_are_set(rendered: list[dict[str, Any]]) -> None:
    env = environment(rendered)
    wanted = set(re.findall(r"\$\{([A-Z0-9_]+)\}", RULES.read_text()))
    assert wanted
    assert wanted - set(env) == set()
    assert {"FANOUT_SOURCE_QUEUE_URL", "FANOUT_DLQ_URL"} <= set(env)


def test_the_scaler_reads_the_source_queue_fanout_reads(rendered: list[dict[str, Any]]) -> None:
    (trigger,) = one(rendered, "ScaledObject")["spec"]["triggers"]
    assert trigger["type"] == "aws-sqs-queue"
    assert trigger["metadata"]["queueURLFromEnv"] == "FANOUT_SOURCE_QUEUE_URL"
    assert "FANOUT_SOURCE_QUEUE_URL" in environment(rendered)
    assert (
        trigger["authenticationRef"]["name"]
        == one(rendered, "TriggerAuthentication")["metadata"]["name"]
    )
    assert int(trigger["metadata"]["queueLength"]) > 0
    assert (
        one(rendered, "ScaledObject")["spec"]["scaleTargetRef"]["name"]
        == one(rendered, "Deployment")["metadata"]["name"]
    )


def test_production_base_uses_pod_identity() -> None:
    docs = kustomize("base")
    assert one(docs, "TriggerAuthentication")["spec"]["podIdentity"]["provider"] == "aws"
    assert "eks.amazonaws.com/role-arn" in one(docs, "ServiceAccount")["metadata"]["annotations"]


def test_the_rules_copy_in_the_base_is_the_repository_s() -> None:
    assert (KUBE / "base" / "rules.yaml").read_text() == RULES.read_text()


# ------------------------------------------------------------------------------------------
# CloudFormation


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short forms: !Ref X -> {"Ref": X}, !Sub s -> {"Fn::Sub": s}."""


def _short_form(loader: CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {"Ref" if suffix == "Ref" else f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _short_form)


def template(name: str) -> dict[str, Any]:
    # CfnLoader is a SafeLoader: no arbitrary objects.
    return dict(yaml.load((CFN / name).read_text(), Loader=CfnLoader))


CFN_LINT_MAIN = "import sys; from cfnlint.runner import main; sys.exit(main())"


def cfn_lint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        # cfn-lint's console script, run by this interpreter (the package has no __main__).
        [sys.executable, "-c", CFN_LINT_MAIN, *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("name", ["fanout-queues.yaml", "fanout-ecs.yaml"])
def test_cfn_lint_passes(name: str) -> None:
    out = cfn_lint(CFN / name)
    assert out.returncode == 0, out.stdout + out.stderr


def test_cfn_lint_catches_a_broken_template(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    text = (CFN / "fanout-queues.yaml").read_text()
    broken.write_text(text.replace("VisibilityTimeout: !Ref", "VisibilityTimeOut: !Ref", 1))
    out = cfn_lint(broken)
    assert out.returncode != 0 and "VisibilityTimeOut" in out.stdout


def documented_iam_actions() -> dict[str, set[str]]:
    """{queue role: actions} from docs/deploying/iam.md's table (source, each target, DLQ)."""
    page = (ROOT / "docs" / "deploying" / "iam.md").read_text()
    table = page.split("| queue | actions | fanout calls |", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0]] = set(re.findall(r"`(sqs:\w+)`", cells[1]))
    return rows


def test_the_iam_policy_holds_exactly_the_documented_actions() -> None:
    resources = template("fanout-queues.yaml")["Resources"]
    statements = resources["FanoutPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    sqs = [s for s in statements if "Sid" in s]
    by_resource = {
        ("source" if s["Resource"] == {"Fn::GetAtt": ["SourceQueue", "Arn"]} else "sends"): s
        for s in sqs
    }
    documented = documented_iam_actions()
    assert set(by_resource["source"]["Action"]) == documented["source"]
    assert set(by_resource["sends"]["Action"]) == documented["each target"] == documented["DLQ"]
    sent_to = {r["Fn::GetAtt"][0] for r in by_resource["sends"]["Resource"]}
    queues = {k for k, v in resources.items() if v["Type"] == "AWS::SQS::Queue"}
    # Every queue but the source and its redrive DLQ (nobody sends there but SQS itself).
    assert sent_to == queues - {"SourceQueue", "SourceRedriveDlq"}
    for statement in sqs:
        assert all(action.startswith("sqs:") for action in statement["Action"])
        assert "*" not in str(statement["Resource"])


def test_every_rules_target_has_a_queue_and_an_output() -> None:
    stack = template("fanout-queues.yaml")
    rules = yaml.safe_load(RULES.read_text())
    names = {
        v["Properties"]["QueueName"]["Fn::Sub"].removeprefix("${NamePrefix}-")
        for v in stack["Resources"].values()
        if v["Type"] == "AWS::SQS::Queue"
    }
    exports = {
        o["Export"]["Name"]["Fn::Sub"].removeprefix("${AWS::StackName}-")
        for o in stack["Outputs"].values()
        if "Export" in o
    }
    ecs_env = {
        e["Name"]
        for e in template("fanout-ecs.yaml")["Resources"]["TaskDefinition"]["Properties"][
            "ContainerDefinitions"
        ][0]["Environment"]
    }
    for name, target in rules["targets"].items():
        variable = target["queue_url"].removeprefix("${").removesuffix("}")
        assert name in names or f"{name}.fifo" in names, name
        assert variable in exports and variable in ecs_env, variable


def test_sse_on_every_queue_and_only_the_rule_sends_to_the_source() -> None:
    resources = template("fanout-queues.yaml")["Resources"]
    for name, resource in resources.items():
        if resource["Type"] == "AWS::SQS::Queue":
            props = resource["Properties"]
            assert "SqsManagedSseEnabled" in props and "KmsMasterKeyId" in props, name
    (statement,) = resources["SourceQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == {
        "Fn::GetAtt": ["GenesysRule", "Arn"]
    }
    rule = resources["GenesysRule"]["Properties"]
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": ["SourceQueue", "Arn"]}
    assert "aws.partner/genesys.com/cloud/" in str(rule["EventBusName"])


def test_ecs_stop_timeout_exceeds_the_shutdown_bound() -> None:
    (fanout,) = template("fanout-ecs.yaml")["Resources"]["TaskDefinition"]["Properties"][
        "ContainerDefinitions"
    ]
    env = {e["Name"]: e.get("Value") for e in fanout["Environment"]}
    assert fanout["StopTimeout"] >= float(env["FANOUT_SHUTDOWN_TIMEOUT_SECONDS"]) + (
        GRACE_MARGIN_SECONDS
    )
    assert fanout["ReadonlyRootFilesystem"] is True
    assert fanout["LogConfiguration"]["LogDriver"] == "awslogs"
    assert {name for name in env if name.startswith("FANOUT_")} - {
        env_name(f) for f in Settings.model_fields
    } == set()
