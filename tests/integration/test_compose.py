"""Static checks of compose/: no Docker engine is needed.

Every Tidegate service's ``command`` must parse with the real ``tidegate`` argument parser,
point at the compose Kafka service, and the Kafka service must be a KRaft broker of the
official image that advertises the address the commands use.
"""

from __future__ import annotations

import argparse
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tidegate.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPO / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
KAFKA_SERVICE = "kafka"


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _services() -> dict[str, dict[str, Any]]:
    services = _compose()["services"]
    assert isinstance(services, dict) and services
    return services


def _command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command")
    if isinstance(cmd, str):
        return shlex.split(cmd)
    assert isinstance(cmd, list), f"command must be a list or string, not {cmd!r}"
    return [str(part) for part in cmd]


def _tidegate_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in _services().items() if name != KAFKA_SERVICE}


def _parse(name: str, argv: list[str]) -> argparse.Namespace:
    assert argv[:1] == ["tidegate"], f"{name}: command must start with `tidegate`: {argv}"
    try:
        return build_parser().parse_args(argv[1:])
    except SystemExit as exc:  # argparse reports bad arguments by exiting
        pytest.fail(f"{name}: `{shlex.join(argv)}` does not parse (exit {exc.code})")


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_every_tidegate_command_parses() -> None:
    services = _tidegate_services()
    assert services, "compose defines no Tidegate service"
    for name, service in services.items():
        _parse(name, _command(service))


def test_workers_and_connectors_use_the_compose_broker() -> None:
    kinds: dict[str, list[str]] = {}
    for name, service in _tidegate_services().items():
        args = _parse(name, _command(service))
        kinds.setdefault(args.command, []).append(name)
        assert args.broker == f"kafka://{KAFKA_SERVICE}:9092", f"{name}: --broker {args.broker}"
        depends = service.get("depends_on")
        assert isinstance(depends, dict) and KAFKA_SERVICE in depends, name
        assert depends[KAFKA_SERVICE].get("condition") == "service_healthy", name
    assert len(kinds.get("worker", [])) >= 1, kinds
    assert len(kinds.get("run", [])) == 1, kinds


def test_workers_do_not_share_state() -> None:
    # RocksDB table state belongs to one worker; two workers on one volume would corrupt it
    seen: dict[str, str] = {}
    for name, service in _tidegate_services().items():
        args = _parse(name, _command(service))
        if args.command != "worker":
            continue
        volumes = [str(v) for v in service.get("volumes", [])]
        named = [v.split(":", 1)[0] for v in volumes if ":" in v]
        assert named, f"{name}: worker state is not on a volume"
        for vol in named:
            assert vol not in seen, f"{name} and {seen[vol]} share volume {vol}"
            seen[vol] = name
        state_dir = str(args.state_dir)
        assert any(
            state_dir == v.split(":")[1] or state_dir.startswith(v.split(":")[1].rstrip("/") + "/")
            for v in volumes
        ), f"{name}: --state-dir {state_dir} is not on a volume ({volumes})"


def test_connector_ports_are_published() -> None:
    for name, service in _tidegate_services().items():
        args = _parse(name, _command(service))
        if args.command != "run":
            continue
        assert args.host == "0.0.0.0", f"{name}: listens on {args.host}, unreachable from outside"
        container_ports = {str(p).rsplit(":", 1)[-1] for p in service.get("ports", [])}
        assert {str(args.sftp_port), str(args.http_port)} <= container_ports, container_ports


def test_tidegate_services_build_the_project_image() -> None:
    for name, service in _tidegate_services().items():
        build = service.get("build")
        assert isinstance(build, dict), f"{name}: no build section"
        context = (COMPOSE_DIR / build["context"]).resolve()
        assert context == REPO, f"{name}: build context {context} is not the repository root"
        assert (context / build["dockerfile"]).resolve() == COMPOSE_DIR / "Dockerfile"
    dockerfile = (COMPOSE_DIR / "Dockerfile").read_text(encoding="utf-8")
    instructions = [line.strip() for line in dockerfile.splitlines() if line.strip()]
    assert "FROM python:3.11-slim" in instructions
    assert any(line.startswith("RUN pip install .") for line in instructions), instructions
    # the image runs `tidegate ...`: the console script must be declared
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["scripts"]["tidegate"] == "tidegate.cli:main"


def test_kafka_service_is_a_kraft_broker_of_the_official_image() -> None:
    kafka = _services()[KAFKA_SERVICE]
    image = str(kafka["image"])
    assert image.startswith("apache/kafka:3.9."), image
    env = _env(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "ZOOKEEPER" not in " ".join(env), "KRaft mode takes no ZooKeeper settings"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@{KAFKA_SERVICE}:9093"
    assert env["CLUSTER_ID"]
    advertised = env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert f"PLAINTEXT://{KAFKA_SERVICE}:9092" in advertised
    listener_names = {entry.split(":", 1)[0] for entry in env["KAFKA_LISTENERS"].split(",")}
    protocol_map = {
        entry.split(":", 1)[0] for entry in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    }
    assert listener_names <= protocol_map
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listener_names
    # a single broker cannot hold more replicas than one
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[key] == "1", key
    assert "healthcheck" in kafka
    volumes = [str(v) for v in kafka.get("volumes", [])]
    assert any(v.endswith(":" + env["KAFKA_LOG_DIRS"]) for v in volumes), volumes
