"""docker-compose.yml, the Dockerfile and the provisioning files agree with the code they run."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from click.testing import CliRunner

from fleet.cli import main
from fleet.settings import Settings
from tests.deploy.compose import (
    COMPOSE_FILE,
    ROOT,
    SECRET_NAME,
    URL_PASSWORD,
    UnknownCommand,
    app_services,
    dockerfile_stages,
    environment,
    exec_form,
    is_required_interpolation,
    load_compose,
    resolve,
    services,
)

APP_SERVICES = sorted(app_services())
ALL_SERVICES = sorted(services())
SETTINGS_VARIABLES = {f"ESTATE_{name.upper()}" for name in Settings.model_fields}
GRAFANA_PROVISIONING = ROOT / "dashboards" / "provisioning"


def _command(name: str) -> list[str]:
    command = app_services()[name].get("command")
    exec_form_message = f"service {name}: give `command` as a list of strings, got {command!r}"
    assert isinstance(command, list), exec_form_message
    assert all(isinstance(token, str) for token in command), exec_form_message
    return command


def test_compose_has_the_production_topology() -> None:
    infrastructure = {"mosquitto", "postgres", "redis", "victoriametrics", "grafana"}
    estate = {"migrate", "broker-bootstrap", "api", "ingest", "worker", "beat"}
    missing = (infrastructure | estate) - set(ALL_SERVICES)
    assert not missing, f"{COMPOSE_FILE.name} lacks services {sorted(missing)}"
    assert set(APP_SERVICES) == estate, "exactly the estate processes are built from this repo"
    assert services()["ingest"]["deploy"]["replicas"] >= 2, "ingest runs as several replicas"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_service_command_is_a_real_estate_command(service: str) -> None:
    argv = _command(service)
    try:
        resolved = resolve(argv)
    except UnknownCommand as exc:
        pytest.fail(f"service {service}: command {argv} is not an estate command: {exc}")
    declared = resolved.declared_options()
    for token in resolved.args:
        if token.startswith("--"):
            option = token.split("=", 1)[0]
            assert option in declared, (
                f"service {service}: `{resolved.display}` has no option {option} "
                f"(it has {sorted(declared)})"
            )
    help_run = CliRunner().invoke(main, [*resolved.path, "--help"])
    assert help_run.exit_code == 0, (
        f"service {service}: `{resolved.display} --help` failed: {help_run.output}"
    )
    # Parsing the whole line proves values convert too (a port that is a number, a known choice).
    try:
        resolved.command.make_context(resolved.path[-1], list(resolved.args))
    except Exception as exc:  # click reports bad values as exceptions of several kinds
        pytest.fail(f"service {service}: `{resolved.display}` rejects {resolved.args}: {exc}")


@pytest.mark.parametrize("service", APP_SERVICES)
def test_estate_variables_are_read_by_something(service: str) -> None:
    resolved = resolve(_command(service))
    known = SETTINGS_VARIABLES | resolved.envvars()
    for variable in environment(app_services()[service]):
        if variable.startswith("ESTATE_"):
            assert variable in known, (
                f"service {service}: {variable} is neither a field of fleet.settings.Settings "
                f"nor an option variable of `{resolved.display}`"
            )


@pytest.mark.parametrize("service", ALL_SERVICES)
def test_no_literal_secrets(service: str) -> None:
    spec = services()[service]
    for variable, value in environment(spec).items():
        if SECRET_NAME.search(variable):
            assert is_required_interpolation(value), (
                f"service {service}: {variable} must be a ${{NAME:?message}} interpolation "
                "(compose then refuses to start without it), not a value in the compose file"
            )
        for match in URL_PASSWORD.finditer(value):
            assert is_required_interpolation(match["password"]), (
                f"service {service}: the password inside {variable} must be a ${{NAME:?...}} "
                "interpolation"
            )
    for token in spec.get("command") or []:
        if str(token).startswith("-") and SECRET_NAME.search(str(token)):
            pytest.fail(f"service {service}: secret passed on the command line ({token})")
        for match in URL_PASSWORD.finditer(str(token)):
            assert is_required_interpolation(match["password"]), (
                f"service {service}: literal password in its command ({token})"
            )


def test_app_services_share_the_estate_environment() -> None:
    shared = load_compose()["x-estate-env"]
    assert shared["ESTATE_PROFILE"] == "production"
    assert shared["ESTATE_MQTT_CREDENTIALS"] == "dynsec"
    for name in ("SECRET_KEY", "SIGNING_KEY"):
        assert is_required_interpolation(shared[f"ESTATE_{name}"]), f"ESTATE_{name}"
    for service in APP_SERVICES:
        env = environment(app_services()[service])
        missing = {key for key in shared if key not in env}
        assert not missing, f"service {service}: lacks the shared settings {sorted(missing)}"


def test_long_running_services_restart_and_one_shots_do_not() -> None:
    one_shots = {"migrate", "broker-bootstrap"}
    for service in ALL_SERVICES:
        restart = services()[service].get("restart")
        if service in one_shots:
            assert restart == "no", f"service {service}: a one-shot must not restart ({restart})"
        else:
            assert restart in ("unless-stopped", "always"), (
                f"service {service}: set a restart policy (unless-stopped), got {restart!r}"
            )


def _has_healthcheck(service: str) -> bool:
    spec = services()[service]
    check = spec.get("healthcheck")
    if check is not None:
        return not check.get("disable", False)
    # The estate image declares a HEALTHCHECK of its own.
    return "build" in spec


def test_dependencies_exist_and_can_be_waited_for() -> None:
    for service in ALL_SERVICES:
        for target, rule in (services()[service].get("depends_on") or {}).items():
            assert target in services(), f"service {service}: depends on unknown service {target}"
            condition = rule.get("condition")
            if condition == "service_healthy":
                assert _has_healthcheck(target), (
                    f"service {service}: waits for {target} to be healthy, but {target} has no "
                    "healthcheck"
                )
            elif condition == "service_completed_successfully":
                assert services()[target].get("restart") == "no", (
                    f"service {service}: waits for {target} to complete, but {target} restarts"
                )
    for service in ("api", "ingest", "worker", "beat"):
        depends = services()[service].get("depends_on") or {}
        assert depends.get("migrate", {}).get("condition") == "service_completed_successfully", (
            f"service {service}: must start after the migrate one-shot completes"
        )


def test_mounted_repository_files_exist() -> None:
    for service in ALL_SERVICES:
        for volume in services()[service].get("volumes") or []:
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source")
            if source and source.startswith("./"):
                assert (ROOT / source).exists(), f"service {service}: mounts missing {source}"


def test_only_edge_services_publish_ports() -> None:
    published = {service for service in ALL_SERVICES if services()[service].get("ports")}
    assert published <= {"mosquitto", "api", "grafana"}, (
        f"only the broker's TLS port, the API and Grafana may be published, not {sorted(published)}"
    )
    for port in services()["mosquitto"]["ports"]:
        assert str(port).endswith(":8883"), (
            f"service mosquitto: publishes {port}; only the TLS listener 8883 may be reachable "
            "from outside (1883 is for the platform's own services)"
        )


def test_mosquitto_config_uses_dynamic_security_and_tls() -> None:
    conf = (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    lines = [line.split() for line in conf.splitlines() if line.strip() and line[0] != "#"]
    settings = [(words[0], words[1:]) for words in lines]
    assert ("allow_anonymous", ["false"]) in settings
    assert ("per_listener_settings", ["false"]) in settings
    plugins = [words[0] for key, words in settings if key == "plugin"]
    assert any(plugin.endswith("/mosquitto_dynamic_security.so") for plugin in plugins)
    assert ("listener", ["1883"]) in settings
    assert ("listener", ["8883"]) in settings
    tls_listener = conf.split("listener 8883", 1)[1]
    assert "certfile" in tls_listener, "the 8883 listener must use TLS"
    assert "keyfile" in tls_listener, "the 8883 listener must use TLS"


def _listening_port(service: str) -> str | None:
    resolved = resolve(_command(service))
    return resolved.option_value("--port") or resolved.option_value("--metrics-port")


def test_scrape_targets_are_services_on_their_metrics_ports() -> None:
    scrape = yaml.safe_load((ROOT / "deploy" / "victoriametrics" / "scrape.yml").read_text())
    scraped: set[str] = set()
    for job in scrape["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            for name in sd["names"]:
                assert name in app_services(), f"scrape job {job['job_name']}: no service {name}"
                port = _listening_port(name)
                assert str(sd["port"]) == port, (
                    f"scrape job {job['job_name']}: scrapes {name}:{sd['port']} but the service "
                    f"listens on {port}"
                )
                scraped.add(name)
    assert {"api", "ingest", "worker"} <= scraped
    victoriametrics = services()["victoriametrics"]
    assert "-promscrape.config=/etc/victoriametrics/scrape.yml" in victoriametrics["command"]
    assert any(
        str(v).startswith("./deploy/victoriametrics/scrape.yml:/etc/victoriametrics/scrape.yml")
        for v in victoriametrics["volumes"]
    )


def test_dockerfile_runs_estate_as_a_non_root_user() -> None:
    stages = dockerfile_stages()
    assert stages, "the Dockerfile has no FROM"
    final = stages[-1]
    assert final.base.startswith("python:3.11-slim"), f"runtime stage is {final.base}"
    entrypoint = final.last("ENTRYPOINT")
    assert entrypoint is not None, "the runtime stage has no ENTRYPOINT"
    assert exec_form(entrypoint) == ["estate"], f'ENTRYPOINT must be ["estate"], not {entrypoint}'
    user = final.last("USER")
    assert user is not None, "the runtime stage sets no USER: the processes would run as root"
    assert user.split(":")[0] not in ("root", "0"), f"the runtime stage runs as {user}"
    assert final.last("HEALTHCHECK"), "the image declares no HEALTHCHECK for the API"
    for stage in stages:
        for keyword, arguments in stage.instructions:
            if keyword == "RUN" and "pip install" in arguments:
                assert "[dev]" not in arguments, f"the image installs dev dependencies: {arguments}"


def test_dockerignore_admits_only_what_the_build_needs() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", ".dockerignore should exclude everything, then admit what is needed"
    admitted = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    assert {"pyproject.toml", "README.md", "fleet", "agents"} <= admitted
    assert not admitted & {".venv", "tests", "var", ".git", "node_modules"}


def _provisioning(kind: str) -> list[dict[str, Any]]:
    files = sorted((GRAFANA_PROVISIONING / kind).glob("*.y*ml"))
    assert files, f"no Grafana {kind} provisioning files under {GRAFANA_PROVISIONING / kind}"
    documents = []
    for path in files:
        document = yaml.safe_load(path.read_text())
        problem = f"{path.relative_to(ROOT)}: not a Grafana provisioning file (apiVersion: 1)"
        assert isinstance(document, dict), problem
        assert document.get("apiVersion") == 1, problem
        documents.append(document)
    return documents


def _grafana_mounts() -> dict[str, str]:
    mounts = {}
    for volume in services()["grafana"]["volumes"]:
        source, target = str(volume).split(":")[:2]
        mounts[target] = source
    return mounts


def test_grafana_datasource_points_at_victoriametrics() -> None:
    datasources = [ds for doc in _provisioning("datasources") for ds in doc["datasources"]]
    assert any(ds["type"] == "prometheus" for ds in datasources)
    vm_command = " ".join(services()["victoriametrics"]["command"])
    vm_port = re.search(r"-httpListenAddr=:(\d+)", vm_command)
    for ds in datasources:
        url = urlsplit(ds["url"])
        assert url.hostname in services(), f"datasource {ds['name']}: no service {url.hostname}"
        if url.hostname == "victoriametrics":
            assert vm_port is not None, "victoriametrics: give -httpListenAddr=:PORT"
            assert str(url.port) == vm_port[1], f"datasource {ds['name']}: wrong port {url.port}"
    assert _grafana_mounts().get("/etc/grafana/provisioning") == "./dashboards/provisioning"


def test_grafana_dashboard_provider_reads_a_mounted_folder() -> None:
    providers = [p for doc in _provisioning("dashboards") for p in doc["providers"]]
    assert providers
    mounts = _grafana_mounts()
    for provider in providers:
        path = provider["options"]["path"]
        assert path in mounts, (
            f"dashboard provider {provider['name']}: {path} is not mounted into grafana "
            f"(mounts: {sorted(mounts)})"
        )
        assert (ROOT / mounts[path]).is_dir()


def test_secret_interpolations_name_the_variable_to_set() -> None:
    text = COMPOSE_FILE.read_text()
    for match in re.finditer(r"\$\{([A-Za-z0-9_]+):\?([^}]*)\}", text):
        assert match[1] in match[2], f"${{{match[1]}:?...}}: say which variable to set"


def test_every_secret_is_given_to_compose_not_defaulted() -> None:
    text = COMPOSE_FILE.read_text()
    for match in re.finditer(r"\$\{([A-Za-z0-9_]+):?-", text):
        assert not SECRET_NAME.search(match[1]), f"${{{match[1]}}} must not have a default"
