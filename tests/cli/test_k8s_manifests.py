"""deploy/k8s: valid against the Kubernetes schemas (kubernetes-validate, offline), KEDA objects
checked against their fields, and every command, probe, queue and variable matched to the code.

The base holds plain manifests, so the files validated here are what `kubectl apply -k` sends;
the base and the example overlay are also rendered with `kubectl kustomize` and validated.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys

import jsonschema
import kubernetes_validate
import pytest
import yaml

from rlm_api.cli.processes import CELERY_APP, QUEUES, worker_command
from rlm_shared.queues import LLM_QUEUE, ROOT_QUEUE
from rlm_worker.liveness import alive_path
from tests.cli.readme import ROOT
from tests.cli.test_deployment_files import VARIABLES, parse_rlm

BASE = ROOT / "deploy" / "k8s" / "base"
OVERLAY = ROOT / "deploy" / "k8s" / "overlays" / "example"
#: The oldest and the newest Kubernetes the manifests are checked against.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
KEDA_KINDS = {"ScaledObject"}
#: Variables the manifests set that Settings does not hold: the OpenTelemetry SDK's, and the
#: metrics port of the workers (docs/metrics.md).
NOT_SETTINGS = {"OTEL_SERVICE_NAME", "WORKER_METRICS_PORT", "REDIS_ADDRESS", "REDIS_PASSWORD"}


def worker_probe(queue_name: str) -> list[str]:
    """The exec probe of a worker pod: its liveness file (rlm_worker/liveness.py) is under a minute old."""
    path = alive_path(f"{queue_name}@$HOSTNAME")
    return ["sh", "-c", f'test -n "$(find {path} -mmin -1)"']


def load(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def base_documents() -> list[dict]:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    return [d for name in kustomization["resources"] for d in load((BASE / name).read_text())]


DOCUMENTS = base_documents()


def of_kind(kind: str, documents: list[dict] = DOCUMENTS) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in documents if d["kind"] == kind}


def containers(documents: list[dict] = DOCUMENTS) -> dict[str, dict]:
    found = {}
    for d in documents:
        if d["kind"] in ("Deployment", "Job"):
            for c in d["spec"]["template"]["spec"]["containers"]:
                found[d["metadata"]["name"]] = c
    return found


#: The fields of keda.sh/v1alpha1 ScaledObject these manifests may use (KEDA 2.x's CRD), closed
#: so that a misspelt field fails; the Redis list scaler's metadata as its documentation lists it.
SCALED_OBJECT = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string"},
                        "kind": {"type": "string"},
                        "apiVersion": {"type": "string"},
                        "envSourceContainerName": {"type": "string"},
                    },
                },
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "idleReplicaCount": {"type": "integer", "minimum": 0},
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {"name": {"type": "string"}, "behavior": {"type": "object"}},
                        },
                    },
                },
                "fallback": {"type": "object"},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"const": "redis"},
                            "name": {"type": "string"},
                            "metricType": {"enum": ["AverageValue", "Value"]},
                            "authenticationRef": {"type": "object"},
                            "metadata": {
                                "type": "object",
                                "required": ["listName", "listLength"],
                                "additionalProperties": False,
                                "properties": {
                                    key: {"type": "string"}
                                    for key in (
                                        "address",
                                        "addressFromEnv",
                                        "host",
                                        "port",
                                        "usernameFromEnv",
                                        "passwordFromEnv",
                                        "listName",
                                        "listLength",
                                        "activationListLength",
                                        "databaseIndex",
                                        "enableTLS",
                                        "unsafeSsl",
                                    )
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def validate(documents: list[dict]) -> None:
    for document in documents:
        if document["kind"] in KEDA_KINDS:
            jsonschema.validate(document, SCALED_OBJECT)
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(document, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                raise AssertionError(
                    f"{document['kind']}/{document['metadata']['name']} on {version}: {exc.message} at "
                    f"{'/'.join(map(str, exc.path))}"
                ) from None


def test_every_base_file_is_in_the_kustomization_and_valid():
    listed = set(yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    kinds = sorted(d["kind"] for d in DOCUMENTS)
    assert kinds == sorted(
        ["ConfigMap", "Job", "Deployment", "Service", "Ingress"]
        + ["Deployment"] * 3
        + ["Service"]
        + ["ScaledObject"] * 2
    )
    validate(DOCUMENTS)


def test_the_validation_catches_a_broken_manifest():
    web = of_kind("Deployment")["rlm-web"]
    broken = yaml.safe_load(yaml.safe_dump(web))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = {"x": 1}
    with pytest.raises(AssertionError):
        validate([broken])
    scaled = yaml.safe_load(yaml.safe_dump(of_kind("ScaledObject")["rlm-llm"]))
    scaled["spec"]["triggers"][0]["metadata"]["listname"] = "rlm.llm"
    with pytest.raises(jsonschema.ValidationError):
        validate([scaled])


def test_commands_are_the_real_entry_points():
    found = containers()
    assert found["rlm-web"]["command"] == ["gunicorn", "-c", "gunicorn.conf.py", "rlm_api:create_app()"]
    assert (ROOT / "gunicorn.conf.py").exists()
    module, factory = found["rlm-web"]["command"][-1].removesuffix("()").split(":")
    assert callable(getattr(importlib.import_module(module), factory))
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["gunicorn", "-c", "gunicorn.conf.py", "rlm_api:create_app()"]' in dockerfile
    parse_rlm(found["rlm-migrate"]["command"])
    assert found["rlm-migrate"]["command"] == ["rlm", "db", "upgrade"]
    parse_rlm(found["rlm-flower"]["command"])
    for probe in ("readinessProbe", "livenessProbe"):
        parse_rlm(found["rlm-flower"][probe]["exec"]["command"])
    for queue_name, deployment, queue in (("root", "rlm-root", ROOT_QUEUE), ("llm", "rlm-llm", LLM_QUEUE)):
        command = found[deployment]["command"]
        parse_rlm(command)
        assert command == ["rlm", "worker", queue_name]
        argv = worker_command(queue_name, 4, f"{queue_name}@%h", "INFO", ())
        assert argv[argv.index("-A") + 1] == CELERY_APP and argv[argv.index("-Q") + 1] == queue
        assert QUEUES[queue_name] == queue
        # The probes read the liveness file of the name `rlm worker` gives it (queue@%h, %h = the
        # pod's name); tests/distributed/test_liveness.py runs this script against a real worker.
        for probe in ("readinessProbe", "livenessProbe"):
            assert found[deployment][probe]["exec"]["command"] == worker_probe(queue_name)


def test_the_celery_app_path_and_the_probe_routes_exist(tmp_path):
    """`celery -A rlm_worker.celery_app` finds an app; readiness (/api/health) fails without a
    database while liveness (/api/openapi.json) does not."""
    from rlm_api import create_app
    from rlm_shared.config import Settings

    # In a process of its own: the worker module builds (and keeps) its Celery app when asked.
    found = subprocess.run(
        [sys.executable, "-c", f"import {CELERY_APP} as m; print(type(m.celery).__name__, m.celery.main)"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/rlm.db"},
    )
    assert found.stdout.split() == ["Celery", "rlm_worker"], found.stderr
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/missing/dir/rlm.db",
        celery_broker_url="redis://127.0.0.1:1/0",
        dispatch="celery",
    )
    client = create_app(settings=settings).test_client()
    web = containers()["rlm-web"]
    assert client.get(web["readinessProbe"]["httpGet"]["path"]).status_code == 503
    assert client.get(web["livenessProbe"]["httpGet"]["path"]).status_code == 200


def test_queues_scaled_are_the_queues_served():
    scaled = of_kind("ScaledObject")
    deployments = of_kind("Deployment")
    assert set(scaled) == {"rlm-root", "rlm-llm"}
    for name, queue in (("rlm-root", ROOT_QUEUE), ("rlm-llm", LLM_QUEUE)):
        spec = scaled[name]["spec"]
        assert spec["scaleTargetRef"]["name"] in deployments
        assert containers()[spec["scaleTargetRef"]["name"]]["command"][-1] == name.removeprefix("rlm-")
        (trigger,) = spec["triggers"]
        assert trigger["metadata"]["listName"] == queue
        assert spec["minReplicaCount"] >= 1  # the reaper runs in every worker; roots wait on leaves


def test_variables_are_settings_and_secrets_are_only_referenced():
    config = of_kind("ConfigMap")["rlm-config"]["data"]
    overlay = yaml.safe_load((OVERLAY / "settings.yaml").read_text())["data"]
    for key in {*config, *overlay}:
        assert key in VARIABLES or key.startswith("OTEL_") or key in NOT_SETTINGS, key
    assert not of_kind("Secret"), "no Secret in the repository: it is created in the cluster"
    secret_keys = ("SECRET_KEY", "OPENAI_API_KEY", "FLOWER_BASIC_AUTH", "DATABASE_URL", "API_TOKENS")
    assert not {*config, *overlay} & set(secret_keys)
    for container in containers().values():
        assert {"secretRef": {"name": "rlm-secrets"}} in container["envFrom"]
        assert {"configMapRef": {"name": "rlm-config"}} in container["envFrom"]
    for deployment in of_kind("Deployment").values():
        assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 0


def test_workers_drain_longer_than_their_work_lasts():
    from rlm_shared.config import Settings

    settings = Settings()
    grace = {
        n: d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        for n, d in of_kind("Deployment").items()
    }
    assert grace["rlm-root"] > settings.execution_timeout
    assert grace["rlm-llm"] > settings.llm_timeout_seconds


@pytest.mark.parametrize("directory", [BASE, OVERLAY], ids=["base", "overlay"])
def test_the_rendered_kustomization_is_valid(directory):
    """What `kubectl apply -k` would send. kubectl is required (`.ci/run` checks it is there)."""
    assert shutil.which("kubectl"), "kubectl is needed to render the kustomizations (kubectl kustomize)"
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    documents = load(rendered)
    validate(documents)
    if directory == OVERLAY:
        assert {d["metadata"].get("namespace") for d in documents if d["kind"] != "Namespace"} == {"rlm"}
        images = {c["image"] for c in containers(documents).values()}
        assert images == {"registry.example.com/rlm-engine:0.1.0"}
