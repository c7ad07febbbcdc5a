"""`estate dashboards`: check the dashboard files and push them to a Grafana."""

from __future__ import annotations

from pathlib import Path

import click

import fleet
from fleet.dashboards.model import DATASOURCE_UID, DashboardError, load_dashboards

DEFAULT_FOLDER = "Estate"
# The repository's dashboards/ folder, beside the fleet package in a checkout.
REPOSITORY_DASHBOARDS = Path(fleet.__file__).resolve().parent.parent / "dashboards"


def _directory(value: Path | None) -> Path:
    directory = value or REPOSITORY_DASHBOARDS
    if not directory.is_dir():
        raise click.UsageError(
            f"no dashboards folder at {directory}: pass --dir with the path of the "
            "repository's dashboards/ folder"
        )
    return directory


dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of dashboard *.json files  [default: the repository's dashboards/]",
)


@click.group()
def dashboards() -> None:
    """Grafana dashboards: check them, push them to a Grafana."""


@dashboards.command()
@dir_option
def check(directory: Path | None) -> None:
    """Validate every dashboard file against the model Grafana expects."""
    try:
        loaded = load_dashboards(_directory(directory))
    except DashboardError as exc:
        raise click.ClickException(str(exc)) from exc
    for item in loaded:
        click.echo(f"{item.model.uid}: {item.model.title} ({len(item.model.panels)} panels) ok")


@dashboards.command()
@click.option(
    "--url", required=True, envvar="GRAFANA_URL", help="Grafana, e.g. https://grafana.example"
)
@click.option(
    "--token",
    required=True,
    envvar="GRAFANA_TOKEN",
    help="Service account token with the Editor role (or set GRAFANA_TOKEN).",
)
@click.option("--folder", default=DEFAULT_FOLDER, show_default=True, help="Grafana folder title.")
@click.option(
    "--datasource-uid",
    default=DATASOURCE_UID,
    show_default=True,
    help="Uid of the Grafana datasource that reads VictoriaMetrics.",
)
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True)
@dir_option
def push(
    url: str,
    token: str,
    folder: str,
    datasource_uid: str,
    timeout: float,
    directory: Path | None,
) -> None:
    """Install or update the dashboards in Grafana by uid; unchanged ones are left alone."""
    import requests
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaClientError, GrafanaUnauthorizedError

    from fleet.dashboards.push import DashboardPusher, PushError

    try:
        loaded = load_dashboards(_directory(directory))
    except DashboardError as exc:
        raise click.ClickException(str(exc)) from exc
    api = GrafanaApi.from_url(url, credential=token, timeout=timeout)
    pusher = DashboardPusher(api, folder=folder, datasource_uid=datasource_uid)
    try:
        results = pusher.push(loaded)
    except GrafanaUnauthorizedError as exc:
        raise click.ClickException(
            f"Grafana at {url} refused the token (401): give a service account token "
            "with the Editor role"
        ) from exc
    except (PushError, GrafanaClientError) as exc:
        raise click.ClickException(str(exc)) from exc
    except requests.RequestException as exc:
        raise click.ClickException(f"cannot reach Grafana at {url}: {exc}") from exc
    for result in results:
        click.echo(f"{result.kind} {result.uid}: {result.action}")
    changed = sum(result.action != "unchanged" for result in results)
    click.echo(f"{changed} change(s) in Grafana at {url}")
