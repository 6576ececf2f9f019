"""compose.yml, .env.example, the Dockerfile and the proxy: valid and consistent with the app.

CI also runs `docker compose config` on compose.yml (.ci/run); these tests check the schema
without Docker and the meaning: replicas, health checks, one image, real setting names.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.files import (
    COMPOSE,
    DOCKERFILE,
    DOCKERIGNORE,
    ENV_EXAMPLE,
    NGINX_CONF,
    PROMETHEUS_CONF,
    SETTING_NAME,
    all_setting_env_names,
    env_example_names,
    load_compose,
)

SCHEMA = Path(__file__).with_name("compose_spec.json")
HOTLINE_SERVICES = ("migrate", "backend", "worker", "bot")
ONE_SHOT = {"migrate"}
ARG_DEFAULT = re.compile(r"^ARG PYTHON_IMAGE=(\S+)", re.MULTILINE)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    # The file names draft 2019-09 by an address jsonschema does not list; say it directly.
    assert "2019-09" in schema["$schema"]
    return jsonschema.Draft201909Validator(schema)


def test_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    errors = sorted(validator(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(
        f"{'.'.join(str(p) for p in e.path) or '(top)'}: {e.message}" for e in errors
    )


def test_the_schema_catches_a_misspelt_key(compose: dict[str, Any]) -> None:
    # Guards the test above: a validator that accepts anything would pass it too.
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    broken = json.loads(json.dumps(compose))
    broken["services"]["backend"]["helthcheck"] = broken["services"]["backend"].pop("healthcheck")
    assert any("helthcheck" in e.message for e in validator(schema).iter_errors(broken))


def test_two_backend_replicas_behind_the_only_published_port(compose: dict[str, Any]) -> None:
    svc = services(compose)
    assert svc["backend"]["deploy"]["replicas"] == 2
    assert "container_name" not in svc["backend"], "a fixed name allows one replica only"
    published = {name for name, s in svc.items() if s.get("ports")}
    # Prometheus (profile monitoring) may publish, but on the host's loopback only.
    assert published - {"prometheus"} == {"proxy"}
    for port in svc.get("prometheus", {}).get("ports", []):
        assert str(port).startswith("127.0.0.1:"), port


def test_every_long_running_service_has_a_health_check(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", f"{name} runs once"
            continue
        check = service.get("healthcheck")
        assert check and not check.get("disable") and check.get("test"), name
        assert service.get("restart") in ("unless-stopped", "always"), name


def test_hotline_services_share_one_image_and_build(compose: dict[str, Any]) -> None:
    svc = services(compose)
    images = {svc[name]["image"] for name in HOTLINE_SERVICES}
    builds = {json.dumps(svc[name].get("build"), sort_keys=True) for name in HOTLINE_SERVICES}
    assert len(images) == 1 and len(builds) == 1
    commands = {name: svc[name]["command"] for name in HOTLINE_SERVICES}
    assert commands == {
        "migrate": ["hotline", "db", "upgrade"],
        "backend": ["hotline", "serve"],
        "worker": ["hotline", "worker"],
        "bot": ["hotline", "bot"],
    }


def test_processes_are_split_and_share_redis(compose: dict[str, Any]) -> None:
    svc = services(compose)
    for name in ("backend", "worker", "bot"):
        env = environment(svc[name])
        assert env["HOTLINE_WORKER_IN_PROCESS"] == "false", name
        assert env["HOTLINE_BOT_IN_PROCESS"] == "false", name
        assert env["HOTLINE_REDIS_URL"].startswith("redis://redis:"), name
        assert env["HOTLINE_ENV"] == "production", name
        assert "@postgres:5432/" in env["HOTLINE_DATABASE_URL"], name
    assert svc["bot"]["profiles"] == ["telegram"]
    assert environment(svc["bot"])["HOTLINE_API_URL"] == "http://proxy:8080"
    # The worker's metrics listen beyond its own loopback, on the port Prometheus scrapes.
    worker = environment(svc["worker"])
    assert worker["HOTLINE_WORKER_METRICS_HOST"] == "0.0.0.0"
    assert worker["HOTLINE_WORKER_METRICS_PORT"] == "9100"
    assert "9100" in svc["worker"]["healthcheck"]["test"][-1]


def test_migrations_run_before_the_backend_and_worker(compose: dict[str, Any]) -> None:
    svc = services(compose)
    for name in ("backend", "worker"):
        depends = svc[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == "service_healthy", name


def test_missing_secrets_stop_compose_with_a_message() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    for name in ("HOTLINE_SECRET_KEY", "POSTGRES_PASSWORD"):
        guards = re.findall(r"\$\{" + name + r":\?([^}]+)\}", text)
        assert guards and all(".env" in g for g in guards), name
    assert env_example_names(commented=False) >= {"HOTLINE_SECRET_KEY", "POSTGRES_PASSWORD"}
    # The example holds no secret: the required values are empty, to be filled in.
    example = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    )
    assert example["HOTLINE_SECRET_KEY"] == "" and example["POSTGRES_PASSWORD"] == ""


def test_every_setting_named_in_the_deployment_exists() -> None:
    known = all_setting_env_names()
    named = set(SETTING_NAME.findall(COMPOSE.read_text(encoding="utf-8")))
    named |= {n for n in env_example_names(commented=True) if SETTING_NAME.fullmatch(n)}
    assert {"HOTLINE_SECRET_KEY", "HOTLINE_DATABASE_URL", "TELEGRAM_BOT_TOKEN"} <= named
    assert named - known == set(), "not a setting (typo?), see hotline/settings.py"


def test_settings_name_check_catches_a_typo() -> None:
    assert "HOTLINE_REDIS_URL" in all_setting_env_names()
    assert "HOTLINE_REDIS_URI" not in all_setting_env_names()
    assert "TELEGRAM_WEBHOOK_SECRET" in all_setting_env_names()


def dockerfile_stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), grouped by FROM."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_dockerfile_is_multi_stage_slim_and_not_root() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    runtime = stages[-1]
    users = [line.split()[1] for line in runtime if line.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    run_lines = " ".join(line for line in runtime if line.upper().startswith("RUN "))
    assert "--no-index" in run_lines and "[dev]" not in run_lines
    # The runtime stage gets wheels only, never the source tree.
    assert not [line for line in runtime if line.startswith("COPY ") and "--from" not in line]
    assert any("/readyz" in line for line in runtime if line.upper().startswith("HEALTHCHECK"))
    assert "EXPOSE 8000" in runtime
    assert "HOTLINE_HOST=0.0.0.0" in " ".join(runtime)
    assert "pip wheel" in " ".join(stages[0])
    base = ARG_DEFAULT.search(DOCKERFILE.read_text(encoding="utf-8"))
    assert base and "slim" in base.group(1)


def test_build_context_keeps_secrets_out_and_sources_in() -> None:
    ignored = {
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".env", ".git", ".venv", "var"} <= ignored
    copied = {
        part.rstrip("/")
        for line in dockerfile_stages()[0]
        if line.upper().startswith("COPY ")
        for part in line.split()[1:-1]
    }
    assert copied >= {"pyproject.toml", "hotline", "migrations"}
    assert not copied & ignored


def test_proxy_forwards_to_the_backend_service() -> None:
    conf = NGINX_CONF.read_text(encoding="utf-8")
    assert re.search(r"set \$backend http://backend:8000;", conf)
    assert "proxy_pass $backend;" in conf
    # The client address is set, not appended: clients cannot pick it (login limits).
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in conf
    # No query strings and no client addresses in the access log.
    log_format = re.search(r"log_format hotline (.*?);", conf, flags=re.DOTALL)
    assert log_format and "$request " not in log_format.group(1)
    assert "$remote_addr" not in log_format.group(1) and "$args" not in log_format.group(1)


def test_prometheus_scrapes_services_that_exist(compose: dict[str, Any]) -> None:
    conf = yaml.safe_load(PROMETHEUS_CONF.read_text(encoding="utf-8"))
    targets = {
        name: sd["port"]
        for job in conf["scrape_configs"]
        for sd in job["dns_sd_configs"]
        for name in sd["names"]
    }
    assert targets == {"backend": 8000, "worker": 9100}
    assert set(targets) <= set(services(compose))
