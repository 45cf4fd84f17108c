"""The `wildwatch` command: one entry point with a group per part of the system."""

from __future__ import annotations

import logging
import os

import click

from broker.cli import cli as broker_cli
from central.commands import cli as central_cli
from edge.cli import cli as edge_cli
from edge.eval import eval_cmd
from models.cli import cli as models_cli


@click.group(
    help="WildWatch 野生动物疫源疫病智能监测 — wildlife epidemic-source and disease "
    "surveillance.\n\n"
    "Edge nodes detect animals in camera-trap images and send anomaly events through MQTT to "
    "central, which stores them, sends SMS to the duty officer and compiles the 15:00 daily report."
)
@click.option("-v", "--verbose", count=True, help="more logging (-v info, -vv debug)")
def cli(verbose: int) -> None:
    """Root command."""
    level = os.environ.get("WILDWATCH_LOG_LEVEL") or ["WARNING", "INFO", "DEBUG"][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@cli.command("demo")
@click.option(
    "--images",
    type=click.Path(file_okay=False, exists=True),
    help="images to feed the node (default ../shared/data/images)",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False),
    default="wildwatch-demo",
    show_default=True,
    help="where the demo writes its database, reports and SMS",
)
@click.option(
    "--timeout",
    type=float,
    default=600.0,
    show_default=True,
    help="seconds to wait for every event to arrive centrally",
)
def demo_cmd(images: str | None, workdir: str, timeout: float) -> None:
    """一键演示 Run the whole system on this machine with no external services: an embedded broker
    (amqtt), central on SQLite and one edge node fed with the sample images; wait until every
    event arrived, write the daily report and the SMS outbox, print a summary."""
    from pathlib import Path

    from central.demo import run_demo

    raise SystemExit(
        run_demo(images=Path(images) if images else None, workdir=Path(workdir), timeout_s=timeout)
    )


cli.add_command(edge_cli)
cli.add_command(central_cli)
cli.add_command(broker_cli)
cli.add_command(models_cli)
cli.add_command(eval_cmd)


def main() -> None:
    """Console-script entry point."""
    cli()
