"""`wildwatch broker config`: write the Mosquitto configuration of a deployment."""

from __future__ import annotations

from pathlib import Path

import click
from pydantic import ValidationError

from broker.mosquitto import load_deployment, write_config


@click.group("broker", help="MQTT 代理 Broker: the Mosquitto configuration.")
def cli() -> None:
    """Broker commands."""


@cli.command("config")
@click.option(
    "--deployment",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    required=True,
    help="deployment YAML (see broker/examples/deployment.yaml)",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="folder for mosquitto.conf, acl, passwd, secrets.env",
)
def config_cmd(deployment: Path, out: Path) -> None:
    """Write a complete Mosquitto configuration: persistence on, a TLS listener, one user and
    password per node and one for central, and ACLs that keep each node inside its own
    site/node topics. Passwords are generated and written to secrets.env (mode 0600).
    Development certificates: see docs/broker.md."""
    try:
        dep = load_deployment(deployment)
    except (ValidationError, ValueError) as exc:
        raise click.ClickException(f"invalid deployment {deployment}: {exc}") from exc
    w = write_config(dep, out)
    for p in (w.conf, w.acl, w.passwd, w.secrets):
        click.echo(str(p))


@cli.command("certs")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="folder for ca.crt, server.crt, server.key",
)
@click.option("--hostname", default="localhost", show_default=True, help="broker host name")
def certs_cmd(out: Path, hostname: str) -> None:
    """Make development TLS certificates (a private CA and a server certificate) with openssl.
    Production sites use their own CA."""
    from broker.certs import CertError, dev_certs

    try:
        for path in dev_certs(out, hostname).values():
            click.echo(str(path))
    except CertError as exc:
        raise click.ClickException(str(exc)) from exc
