"""The k8s/ manifests, checked statically against the code they run (no cluster needed).

Parsed with PyYAML; the queues and time limits come from workers/app.py through `ast`, so the Celery
app (whose import reads settings) is never imported.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import yaml

from connector.settings import ENV_VARS
from connector.webhooks.receiver import LIVENESS_PATH, READINESS_PATH, WEBHOOK_PATH
from connector.webhooks.serve import server_options
from tests.deploy.app_constants import app_constants, option

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
GRACE_MARGIN_SECONDS = 30  # time for the warm shutdown to ack and exit after the last task ends
PLACEHOLDER = "REPLACE_ME"
CELERY_SUBCOMMANDS = {"worker", "beat", "flower"}
MUST_MIN_ONE = {"poll", "sftp"}  # each beat tick and each delivery without a cold start
RECEIVER_PROBES = {"readinessProbe": {READINESS_PATH}, "livenessProbe": {LIVENESS_PATH}}
WEBHOOK_KEY = "CONNECTOR_XERO_WEBHOOK_KEY"




@cache
def files() -> dict[str, list[dict[str, Any]]]:
    """Every YAML file of k8s/ (kustomization and templates included), as lists of documents."""
    return {path.name: [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
            for path in sorted(K8S.glob("*.y*ml"))}


def kustomization() -> dict[str, Any]:
    (doc,) = files()["kustomization.yaml"]
    return doc


def resources() -> list[dict[str, Any]]:
    """What `kubectl apply -k k8s` applies."""
    return [doc for name in kustomization()["resources"] for doc in files()[name]]


def templates() -> list[dict[str, Any]]:
    return [doc for name, docs in files().items() if name.endswith(".template.yaml") for doc in docs]


def of_kind(kind: str, docs: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    return [doc for doc in (resources() if docs is None else docs) if doc["kind"] == kind]


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return deployment["spec"]["template"]["spec"]["containers"]


def main_args(deployment: dict[str, Any]) -> list[str]:
    container = containers(deployment)[0]
    return [str(arg) for arg in container.get("command", []) + container.get("args", [])]


def celery_deployments(subcommand: str) -> list[dict[str, Any]]:
    return [d for d in of_kind("Deployment") if main_args(d)[:1] == ["celery"] and subcommand in main_args(d)]


def worker_deployments() -> dict[str, dict[str, Any]]:
    """queue -> its worker Deployment (asserting there is exactly one per queue)."""
    by_queue: dict[str, dict[str, Any]] = {}
    for deployment in celery_deployments("worker"):
        queue = option(main_args(deployment), "-Q", "--queues")
        assert queue is not None, deployment["metadata"]["name"]
        assert queue not in by_queue, f"two Deployments consume {queue!r}"
        by_queue[queue] = deployment
    return by_queue


def selects(selector: dict[str, str], deployment: dict[str, Any]) -> bool:
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    return all(labels.get(key) == value for key, value in selector.items())


def receiver() -> dict[str, Any]:
    """The one Deployment running `connector webhooks serve`."""
    (deployment,) = [d for d in of_kind("Deployment") if main_args(d)[:3] == ["connector", "webhooks", "serve"]]
    return deployment


def container_port(deployment: dict[str, Any], port: str | int) -> int:
    """A named or numbered port of the deployment's first container, as a number."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in containers(deployment)[0].get("ports", []) if p["name"] == port]
    return int(number)


def ingress_backends(ingress: dict[str, Any]) -> list[str]:
    return [path["backend"]["service"]["name"] for rule in ingress["spec"]["rules"]
            for path in rule["http"]["paths"]]


def secret_url(name: str) -> str:
    (secret,) = [s for s in of_kind("Secret", templates()) if name in s["stringData"]]
    return str(secret["stringData"][name])


def broker_url() -> str:
    (secret,) = [s for s in of_kind("Secret", templates()) if "CONNECTOR_BROKER_URL" in s["stringData"]]
    return str(secret["stringData"]["CONNECTOR_BROKER_URL"])


def test_every_file_parses_into_named_objects() -> None:
    assert files()
    for name, docs in files().items():
        assert docs, name
        for doc in docs:
            assert doc.get("kind"), name
            if doc["kind"] != "Kustomization":
                assert doc["metadata"]["name"], name


def test_kustomization_lists_every_manifest_but_never_the_secret_template() -> None:
    listed = kustomization()["resources"]
    manifests = {name for name in files() if name != "kustomization.yaml" and not name.endswith(".template.yaml")}
    assert sorted(listed) == sorted(manifests)
    assert len(listed) == len(set(listed))
    assert templates(), "the Secret template is missing"


def test_everything_lives_in_one_namespace() -> None:
    namespace = kustomization()["namespace"]
    assert [doc["metadata"]["name"] for doc in of_kind("Namespace")] == [namespace]
    for doc in resources() + templates():
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == namespace, doc["metadata"]["name"]


def test_one_worker_deployment_per_queue_on_the_real_app() -> None:
    queues, _ = app_constants()
    workers = worker_deployments()
    assert sorted(workers) == sorted(queues)
    for queue, deployment in workers.items():
        args = main_args(deployment)
        assert option(args, "-A", "--app") == "workers.app"
        assert option(args, "-n", "--hostname") == f"{queue}@%h"
        assert int(option(args, "-c", "--concurrency") or 0) >= 1, "fix the concurrency; KEDA scales pods"
        assert not {"-B", "--beat"} & set(args), "a worker must not embed beat"
        assert "replicas" not in deployment["spec"], "the ScaledObject owns the replica count"


def test_every_celery_container_runs_workers_app_as_pid_1() -> None:
    app_source = (REPO / "workers" / "app.py").read_text()
    assert re.search(r"^app = ", app_source, re.MULTILINE)
    celery = [d for d in of_kind("Deployment") if "celery" in main_args(d)]
    assert celery
    for deployment in celery:
        args = main_args(deployment)
        assert args[0] == "celery", "exec form, no shell wrapper, so celery gets SIGTERM"
        # Flower runs workers.monitor: the broker and the queues, no secrets (tests/deploy/test_flower.py)
        assert option(args, "-A", "--app") == ("workers.monitor" if "flower" in args else "workers.app")
        assert CELERY_SUBCOMMANDS & set(args)


def test_worker_grace_period_outlasts_the_queue_time_limit() -> None:
    _, limits = app_constants()
    for queue, deployment in worker_deployments().items():
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace >= limits[queue] + GRACE_MARGIN_SECONDS, (queue, grace, limits[queue])


def test_exactly_one_beat_recreated_never_scaled() -> None:
    beats = celery_deployments("beat")
    assert len(beats) == 1
    (beat,) = beats
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"
    name = beat["metadata"]["name"]
    for kind in ("ScaledObject", "HorizontalPodAutoscaler"):
        assert all(doc["spec"]["scaleTargetRef"]["name"] != name for doc in of_kind(kind))
    assert not [pdb for pdb in of_kind("PodDisruptionBudget") if selects(pdb["spec"]["selector"]["matchLabels"], beat)]


def test_one_scaled_object_per_worker_on_its_queue_list() -> None:
    queues, _ = app_constants()
    namespace = kustomization()["namespace"]
    broker = urlsplit(broker_url())
    auths = {doc["metadata"]["name"] for doc in of_kind("TriggerAuthentication")}
    scaled = of_kind("ScaledObject")
    targets = [doc["spec"]["scaleTargetRef"] for doc in scaled]
    assert all(target.get("kind", "Deployment") == "Deployment" for target in targets)
    assert len(scaled) == len(queues)
    for queue, deployment in worker_deployments().items():
        name = deployment["metadata"]["name"]
        (mine,) = [doc for doc in scaled if doc["spec"]["scaleTargetRef"]["name"] == name]
        spec = mine["spec"]
        (trigger,) = spec["triggers"]
        metadata = trigger["metadata"]
        assert trigger["type"] == "redis"
        assert metadata["listName"] == queue, "Celery's Redis list is named after the queue"
        assert int(metadata["listLength"]) >= 1
        host, port = metadata["address"].rsplit(":", 1)
        assert host == f"{broker.hostname}.{namespace}.svc.cluster.local", "KEDA resolves names from its own namespace"
        assert int(port) == (broker.port or 6379)
        assert str(metadata.get("databaseIndex", "0")) == (broker.path.strip("/") or "0")
        assert trigger["authenticationRef"]["name"] in auths
        minimum = spec.get("minReplicaCount", 0)
        assert spec["maxReplicaCount"] >= max(minimum, 1)
        if queue in MUST_MIN_ONE:
            assert minimum >= 1, queue
    assert broker.scheme == "redis"


def test_disruption_budgets_cover_each_worker() -> None:
    deployments = of_kind("Deployment")
    for pdb in of_kind("PodDisruptionBudget"):
        matched = [d for d in deployments if selects(pdb["spec"]["selector"]["matchLabels"], d)]
        assert len(matched) == 1, pdb["metadata"]["name"]
        assert "minAvailable" not in pdb["spec"], "a minAvailable budget blocks node drains of single pods"
    for queue, deployment in worker_deployments().items():
        assert [pdb for pdb in of_kind("PodDisruptionBudget") if selects(pdb["spec"]["selector"]["matchLabels"],
                                                                         deployment)], queue


def test_deployment_selectors_match_their_pods() -> None:
    for deployment in of_kind("Deployment"):
        assert selects(deployment["spec"]["selector"]["matchLabels"], deployment), deployment["metadata"]["name"]


def test_pods_run_locked_down_with_writable_tmp_and_staging() -> None:
    (config,) = of_kind("ConfigMap")
    staging = PurePosixPath(config["data"]["CONNECTOR_STAGING_DIR"])
    for deployment in of_kind("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        name = deployment["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"].get("runAsUser", 1) != 0, name
        assert pod.get("automountServiceAccountToken") is False, name
        empty_dirs = {volume["name"] for volume in pod.get("volumes", []) if "emptyDir" in volume}
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            writable = [PurePosixPath(m["mountPath"]) for m in container.get("volumeMounts", [])
                        if m["name"] in empty_dirs]
            assert PurePosixPath("/tmp") in writable, name
            if main_args(deployment)[:1] == ["celery"] and "flower" not in main_args(deployment):
                assert any(staging == path or path in staging.parents for path in writable), name
            schedule = option(main_args(deployment), "-s", "--schedule")
            if "beat" in main_args(deployment):
                assert schedule, "name beat's schedule file; the default is relative to the broker folder"
                assert any(path in PurePosixPath(schedule).parents for path in writable), name


def test_containers_have_resources_and_cheap_probes() -> None:
    for deployment in of_kind("Deployment"):
        name = deployment["metadata"]["name"]
        for container in containers(deployment):
            resources_ = container["resources"]
            assert {"cpu", "memory"} <= set(resources_["requests"]), name
            assert "memory" in resources_["limits"], name
            for probe in ("readinessProbe", "livenessProbe"):
                spec = container[probe]
                if "exec" in spec:
                    # A probe must not start celery (inspect ping costs ~1 s CPU and fails when Redis does).
                    assert "celery" not in spec["exec"]["command"][:1], (name, probe)
                    assert "inspect" not in spec["exec"]["command"], (name, probe)
                elif "flower" in main_args(deployment):
                    assert spec["httpGet"]["path"] == "/healthcheck", (name, probe)
                else:
                    assert spec["httpGet"]["path"] in RECEIVER_PROBES[probe], (name, probe)


def test_every_connector_variable_is_a_real_setting() -> None:
    names: list[str] = []
    for doc in of_kind("ConfigMap"):
        names += doc["data"]
    for doc in of_kind("Secret", templates()):
        names += doc.get("stringData", {})
    for deployment in of_kind("Deployment"):
        for container in containers(deployment):
            names += [env["name"] for env in container.get("env", [])]
    connector = [name for name in names if name.startswith("CONNECTOR_")]
    assert connector
    assert not set(connector) - set(ENV_VARS)


def test_every_referenced_config_map_and_secret_exists() -> None:
    config_maps = {doc["metadata"]["name"] for doc in of_kind("ConfigMap")}
    secrets = {doc["metadata"]["name"]: doc["stringData"] for doc in of_kind("Secret", templates())}
    for deployment in of_kind("Deployment"):
        for container in containers(deployment):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps
                else:
                    assert source["secretRef"]["name"] in secrets
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]]
    for auth in of_kind("TriggerAuthentication"):
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["key"] in secrets[ref["name"]]


def test_secrets_are_placeholders_only_and_never_applied() -> None:
    assert not of_kind("Secret"), "Secrets are created out of band; applying a template would overwrite them"
    template_secrets = of_kind("Secret", templates())
    assert {"CONNECTOR_FERNET_KEYS", "CONNECTOR_DATABASE_URL"} <= {
        key for secret in template_secrets for key in secret["stringData"]}
    for secret in template_secrets:
        assert "data" not in secret, "no base64 values: stringData placeholders only"
        for key, value in secret["stringData"].items():
            assert PLACEHOLDER in value, f"{secret['metadata']['name']}.{key} must be a {PLACEHOLDER} placeholder"
    for config in of_kind("ConfigMap"):
        assert not {"CONNECTOR_FERNET_KEYS", "CONNECTOR_DATABASE_URL", "CONNECTOR_BROKER_URL"} & set(config["data"])
    for name in kustomization()["resources"]:
        text = (K8S / name).read_text()
        assert not re.search(r"://[^/:@\s]+:[^@\s]*@", text), f"{name} carries a URL with a password"


def test_flower_is_internal_with_basic_auth_from_a_secret() -> None:
    (flower,) = celery_deployments("flower")
    assert flower["spec"]["replicas"] == 1
    (container,) = containers(flower)
    assert option(main_args(flower), "--port") == "5555"
    (auth,) = [env for env in container["env"] if env["name"] == "FLOWER_BASIC_AUTH"]
    assert "secretKeyRef" in auth["valueFrom"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    (service,) = [s for s in of_kind("Service") if selects(s["spec"]["selector"], flower)]
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert not [i for i in of_kind("Ingress") if service["metadata"]["name"] in ingress_backends(i)]
    assert selects(service["spec"]["selector"], flower)
    (port,) = service["spec"]["ports"]
    assert ports[port["targetPort"]] == 5555


def test_one_image_everywhere_matching_compose() -> None:
    (image,) = kustomization()["images"]
    tags = set()
    for deployment in of_kind("Deployment"):
        for container in containers(deployment):
            name, _, tag = container["image"].partition(":")
            assert name == image["name"], deployment["metadata"]["name"]
            tags.add(tag)
    assert tags == {str(image["newTag"])}
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert compose["x-connector-image"]["image"] == f"{image['name']}:{image['newTag']}"


def test_the_webhook_receiver_runs_the_real_command_with_probes_on_its_port() -> None:
    from connector.cli.webhooks import serve

    deployment = receiver()
    args = main_args(deployment)
    assert {arg.split("=")[0] for arg in args[3:] if arg.startswith("--")} <= {o for p in serve.params for o in p.opts}
    bind = option(args, "--bind")
    assert bind is not None
    assert bind.startswith("0.0.0.0:"), "listen on the pod's address, not loopback"
    port = int(bind.rsplit(":", 1)[1])
    (container,) = containers(deployment)
    assert [p["containerPort"] for p in container["ports"]] == [port]
    for probe, paths in RECEIVER_PROBES.items():
        spec = container[probe]["httpGet"]
        assert spec["path"] in paths, probe
        assert container_port(deployment, spec["port"]) == port, probe
    assert deployment["spec"].get("replicas", 1) >= 2, "a rollout or a drain must not leave Xero without a receiver"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert [pdb for pdb in of_kind("PodDisruptionBudget") if selects(pdb["spec"]["selector"]["matchLabels"],
                                                                     deployment)]


def test_the_webhook_receiver_drains_before_it_is_killed() -> None:
    deployment = receiver()
    (container,) = containers(deployment)
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep", "let the ingress controller drop the pod before gunicorn stops accepting"
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    graceful = server_options("0.0.0.0:8780", 1, 1)["graceful_timeout"]
    assert grace > int(pre_stop[1]) + graceful, "gunicorn's graceful timeout must fit after the preStop sleep"


def test_the_webhook_receiver_writes_nothing_outside_tmp() -> None:
    from gunicorn.config import Config

    options = server_options("0.0.0.0:8780", 1, 1)
    assert set(options) <= set(Config().settings), "every option is a setting of the installed gunicorn"
    assert options["control_socket_disable"] is True, "gunicorn's control socket lives under the read-only $HOME"
    assert options["accesslog"] is None


def test_xero_reaches_only_the_webhook_path_over_tls() -> None:
    deployment = receiver()
    (service,) = [s for s in of_kind("Service") if selects(s["spec"]["selector"], deployment)]
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP", "only the Ingress is public"
    (ingress,) = [i for i in of_kind("Ingress") if service["metadata"]["name"] in ingress_backends(i)]
    (tls,) = ingress["spec"]["tls"]
    assert tls["secretName"]
    for rule in ingress["spec"]["rules"]:
        assert rule["host"] in tls["hosts"], "Xero delivers only over HTTPS: every routed host needs TLS"
        (path,) = rule["http"]["paths"]
        assert path["path"] == WEBHOOK_PATH, "the probes and anything else stay in-cluster"
        assert path["pathType"] == "Exact"
        backend = path["backend"]["service"]
        (port,) = [p for p in service["spec"]["ports"] if backend["port"].get("name", p["name"]) == p["name"]
                   and backend["port"].get("number", p["port"]) == p["port"]]
        assert container_port(deployment, port["targetPort"]) == int(option(main_args(deployment), "--bind")
                                                                      .rsplit(":", 1)[1])
    annotations = ingress["metadata"].get("annotations", {})
    assert annotations.get("nginx.ingress.kubernetes.io/force-ssl-redirect") == "true"


def test_the_receiver_network_policy_admits_only_the_ingress_controller() -> None:
    deployment = receiver()
    policies = [p for p in of_kind("NetworkPolicy") if selects(p["spec"]["podSelector"]["matchLabels"], deployment)]
    assert len(policies) == 1
    (policy,) = policies
    others = [d for d in of_kind("Deployment") if d is not deployment]
    assert not [d for d in others if selects(policy["spec"]["podSelector"]["matchLabels"], d)], "receiver pods only"
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    (container,) = containers(deployment)
    (port,) = [p["containerPort"] for p in container["ports"]]
    for rule in policy["spec"]["ingress"]:
        assert rule["from"], "an empty `from` admits every source"
        for source in rule["from"]:
            assert source.get("namespaceSelector", {}).get("matchLabels"), "the ingress controller's namespace"
            assert "ipBlock" not in source
        assert [(p.get("protocol", "TCP"), p["port"]) for p in rule["ports"]] == [("TCP", port)]


def test_the_receiver_may_reach_only_postgresql_redis_and_dns() -> None:
    (policy,) = [p for p in of_kind("NetworkPolicy") if selects(p["spec"]["podSelector"]["matchLabels"], receiver())]
    allowed = set()
    for rule in policy["spec"]["egress"]:
        assert rule.get("ports"), "an egress rule without ports opens every port"
        allowed |= {(p.get("protocol", "TCP"), int(p["port"])) for p in rule["ports"]}
    database = urlsplit(secret_url("CONNECTOR_DATABASE_URL"))
    broker = urlsplit(broker_url())
    assert allowed == {("TCP", database.port or 5432), ("TCP", broker.port or 6379), ("UDP", 53), ("TCP", 53)}


def test_only_the_receiver_gets_the_webhook_key() -> None:
    secrets = {doc["metadata"]["name"]: doc["stringData"] for doc in of_kind("Secret", templates())}
    holders = {name for name, data in secrets.items() if WEBHOOK_KEY in data}
    assert holders, "the Secret template must carry the webhook key"
    for deployment in of_kind("Deployment"):
        for container in containers(deployment):
            via_env_from = [s["secretRef"]["name"] for s in container.get("envFrom", []) if "secretRef" in s]
            via_env = [env["name"] for env in container.get("env", [])]
            gets_key = WEBHOOK_KEY in via_env or bool(holders & set(via_env_from))
            assert gets_key == (deployment is receiver()), deployment["metadata"]["name"]
    (config,) = of_kind("ConfigMap")
    assert WEBHOOK_KEY not in config["data"]
