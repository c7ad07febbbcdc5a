"""Reading docker-compose.yml, the Dockerfile and the estate CLI for the deployment checks."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import yaml

from fleet.cli import main

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

# ${NAME:?message}: compose refuses to start while NAME is unset or empty.
REQUIRED_INTERPOLATION = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]+\}")
SECRET_NAME = re.compile(r"KEY|PASSWORD|SECRET|TOKEN", re.IGNORECASE)
URL_PASSWORD = re.compile(r"://[^:/@\s]*:(?P<password>[^@\s]*)@")


def load_compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = load_compose()["services"]
    return found


def app_services() -> dict[str, dict[str, Any]]:
    """Services running the estate image (the ones built from this repository)."""
    return {name: spec for name, spec in services().items() if "build" in spec}


def environment(spec: dict[str, Any]) -> dict[str, str]:
    """A service's environment in either compose form (mapping or KEY=VALUE list)."""
    env = spec.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def is_required_interpolation(value: str) -> bool:
    return REQUIRED_INTERPOLATION.fullmatch(value) is not None


@dataclass
class ResolvedCommand:
    """An `estate` command line resolved to the click command it runs."""

    path: list[str]
    command: click.Command
    args: list[str]

    @property
    def display(self) -> str:
        return "estate " + " ".join(self.path)

    def declared_options(self) -> set[str]:
        params = self.command.params
        return {opt for param in params for opt in (*param.opts, *param.secondary_opts)}

    def envvars(self) -> set[str]:
        names: set[str] = set()
        for param in self.command.params:
            envvar = getattr(param, "envvar", None)
            if isinstance(envvar, str):
                names.add(envvar)
            elif envvar:
                names.update(envvar)
        return names

    def option_value(self, option: str) -> str | None:
        for index, token in enumerate(self.args):
            if token == option and index + 1 < len(self.args):
                return self.args[index + 1]
            if token.startswith(option + "="):
                return token.split("=", 1)[1]
        return None


class UnknownCommand(LookupError):
    pass


def resolve(argv: list[str]) -> ResolvedCommand:
    """Walk `estate` groups the way click does; raise UnknownCommand naming the missing part."""
    command: click.Command = main
    ctx = click.Context(main, info_name="estate")
    path: list[str] = []
    remaining = list(argv)
    while isinstance(command, click.Group) and remaining and not remaining[0].startswith("-"):
        name = remaining.pop(0)
        found = command.get_command(ctx, name)
        if found is None:
            where = "estate " + " ".join(path) if path else "estate"
            raise UnknownCommand(f"`{where}` has no sub-command {name!r}")
        path.append(name)
        command = found
        ctx = click.Context(command, info_name=name, parent=ctx)
    if isinstance(command, click.Group):
        raise UnknownCommand(f"`estate {' '.join(path)}` is a group; name one of its commands")
    return ResolvedCommand(path=path, command=command, args=remaining)


@dataclass
class DockerStage:
    base: str
    instructions: list[tuple[str, str]]

    def last(self, keyword: str) -> str | None:
        values = [value for key, value in self.instructions if key == keyword]
        return values[-1] if values else None


def dockerfile_stages() -> list[DockerStage]:
    """The Dockerfile's stages, each with its (INSTRUCTION, arguments) in order."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[DockerStage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stages.append(DockerStage(base=rest.split()[0], instructions=[]))
        elif stages:
            stages[-1].instructions.append((keyword, rest.strip()))
    return stages


def exec_form(arguments: str) -> list[str] | None:
    """The list of a JSON (exec form) instruction, or None for the shell form."""
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) else None
