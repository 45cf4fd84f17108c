"""The `wildwatch` command: one entry point, a group per part of the system, loaded on demand.

A Raspberry Pi node installs only `wildwatch[edge]`, a server only `wildwatch[central]`: each
group is imported when it is used, so a node never imports the server's packages (and starts
faster), and a group whose extra is missing says which extra to install instead of failing
with an ImportError.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import NamedTuple

import click


class _Part(NamedTuple):
    target: str  # "module:attribute" of the click command
    extra: str  # the pip extra that installs what the module needs
    summary: str  # shown by `wildwatch --help` without importing the module


# Every subcommand of `wildwatch`, in the order `--help` lists them.
PARTS: dict[str, _Part] = {
    "demo": _Part("wildwatch.demo:demo_cmd", "all", "一键演示 the whole system on one machine"),
    "edge": _Part("edge.cli:cli", "edge", "边缘节点 Edge node: camera media in, events out."),
    "central": _Part(
        "central.commands:cli", "central", "中心服务器 Central: ingest, alerts, API, reports."
    ),
    "broker": _Part("broker.cli:cli", "", "消息代理 Broker: Mosquitto config and certificates."),
    "models": _Part("models.cli:cli", "", "模型 Model registry: list, pull, import, verify."),
    "eval": _Part("edge.eval:eval_cmd", "edge", "评估 Detection quality on labelled images."),
    "gallery": _Part(
        "wildwatch.gallery:cli", "all", "参考图库 Reference gallery: species the staff taught."
    ),
}


def _missing(name: str, part: _Part, exc: ModuleNotFoundError) -> click.Command:
    """A stand-in for a group whose extra is not installed: says what to install."""
    hint = f"pip install 'wildwatch[{part.extra}]'" if part.extra else "pip install wildwatch"
    text = f"未安装 not installed here ({exc.name} missing): {hint}"

    def explain() -> None:
        raise click.ClickException(f"wildwatch {name}: {text}")

    return click.Command(name, callback=explain, help=text, short_help=text)


class LazyGroup(click.Group):
    """Imports a subcommand's module only when that subcommand is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(PARTS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        part = PARTS.get(cmd_name)
        if part is None:
            return None
        module_name, _, attr = part.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # Only a missing third-party package means "extra not installed"; our own modules
            # missing is a broken install and must show as such.
            if exc.name is None or exc.name.split(".")[0] in _OWN_PACKAGES:
                raise
            return _missing(cmd_name, part, exc)
        command = getattr(module, attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{part.target} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # The summaries above, so that `--help` imports no part of the system.
        with formatter.section("Commands"):
            formatter.write_dl([(name, part.summary) for name, part in PARTS.items()])


_OWN_PACKAGES = frozenset({"wildwatch", "edge", "central", "broker", "models", "surveillance"})


@click.group(
    cls=LazyGroup,
    help="WildWatch 野生动物疫源疫病智能监测 — wildlife epidemic-source and disease "
    "surveillance.\n\n"
    "Edge nodes detect animals in camera-trap images and send anomaly events through MQTT to "
    "central, which stores them, texts the duty officer and compiles the 15:00 daily report.",
)
@click.option("-v", "--verbose", count=True, help="more logging (-v info, -vv debug)")
def cli(verbose: int) -> None:
    """Root command."""
    level = os.environ.get("WILDWATCH_LOG_LEVEL") or ["WARNING", "INFO", "DEBUG"][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main() -> None:
    """Console-script entry point."""
    cli()
