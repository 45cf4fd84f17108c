"""`wildwatch central`: serve the API and MQTT ingest, compile the daily report."""

from __future__ import annotations

import logging
from datetime import date, datetime
from pathlib import Path

import click

from central.config import CentralConfig, ConfigError, load_config


def _config(path: Path) -> CentralConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group("central")
def cli() -> None:
    """中心服务器 Central server: ingest, alerts, API and reports."""


@cli.command("serve")
@click.option(
    "--config", "config_path", type=click.Path(exists=True, path_type=Path), required=True
)
def serve_cmd(config_path: Path) -> None:
    """Run ingest, alerts and the API until SIGINT/SIGTERM."""
    from central.app import serve

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    serve(_config(config_path))


@cli.command("report")
@click.option(
    "--config", "config_path", type=click.Path(exists=True, path_type=Path), required=True
)
@click.option(
    "--date", "day", required=True, help="report day YYYY-MM-DD (window ends at its cut-off)"
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None)
def report_cmd(config_path: Path, day: str, out_dir: Path | None) -> None:
    """Write the daily report (JSON + XLSX) and print the paths."""
    from central.db.migrate import upgrade
    from central.db.session import make_engine, make_session_factory
    from central.reports.daily import build_daily_report
    from central.reports.xlsx import write_daily_report

    try:
        the_day: date = datetime.strptime(day, "%Y-%m-%d").date()
    except ValueError as exc:
        raise click.BadParameter(f"{day!r} is not YYYY-MM-DD", param_hint="--date") from exc
    cfg = _config(config_path)
    upgrade(cfg.database_url)
    engine = make_engine(cfg.database_url)
    try:
        with make_session_factory(engine)() as session:
            report = build_daily_report(session=session, config=cfg, day=the_day)
    finally:
        engine.dispose()
    for path in write_daily_report(report, out_dir or cfg.report_dir):
        click.echo(str(path))
