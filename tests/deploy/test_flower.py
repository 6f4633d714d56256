"""Finding 12 of the operator's day: Flower gets only what it needs. It reads the workers' events and
the queues through the broker, so it is given the broker URL (and its own basic-auth), never the Fernet
keys or the database URL, in docker-compose and in Kubernetes; and it runs `workers.monitor`, the
Celery app that needs nothing else."""

from __future__ import annotations

from typing import Any

from tests.deploy.app_constants import option
from tests.deploy.test_compose import argv, celery_services, compose, environment, services
from tests.deploy.test_k8s import celery_deployments, containers, main_args

FLOWER_NEEDS = {"CONNECTOR_BROKER_URL", "FLOWER_BASIC_AUTH"}
NEVER_FOR_FLOWER = {"CONNECTOR_FERNET_KEYS", "CONNECTOR_DATABASE_URL"}


def test_compose_gives_flower_the_broker_url_and_its_login_only() -> None:
    (name,) = celery_services("flower")
    flower = services()[name]
    assert option(argv(flower), "-A", "--app") == "workers.monitor"
    given = environment(flower)
    assert set(given) == FLOWER_NEEDS, sorted(given)
    assert given["CONNECTOR_BROKER_URL"] == compose()["x-connector-env"]["CONNECTOR_BROKER_URL"]
    assert not NEVER_FOR_FLOWER & set(given)


def test_kubernetes_gives_flower_the_broker_url_from_the_secret_and_nothing_else_of_it() -> None:
    (flower,) = celery_deployments("flower")
    assert option(main_args(flower), "-A", "--app") == "workers.monitor"
    (container,) = containers(flower)
    assert "envFrom" not in container, "envFrom would hand Flower every key of the Secret"
    env: dict[str, Any] = {item["name"]: item for item in container["env"]}
    assert set(env) == FLOWER_NEEDS, sorted(env)
    broker = env["CONNECTOR_BROKER_URL"]["valueFrom"]["secretKeyRef"]
    assert (broker["name"], broker["key"]) == ("connector-secrets", "CONNECTOR_BROKER_URL")
