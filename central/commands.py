"""`wildwatch central`: serve the API and MQTT ingest, compile the daily report."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from central.config import CentralConfig, ConfigError, load_config

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


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
    "--date",
    "day",
    default=None,
    help="报告日期 report day YYYY-MM-DD (window ends at its cut-off); "
    "default: the most recent closed window",
)
@click.option(
    "--catch-up",
    is_flag=True,
    help="补报漏报日 every closed window since the last report on file that has no report yet "
    "(what the timer runs; does nothing when all are done)",
)
@click.option(
    "--grace-minutes",
    type=click.IntRange(0, 24 * 60),
    default=None,
    help="a window counts as closed this long after its cut-off, so events still in node "
    "outboxes arrive first (default: report.grace_minutes of the config)",
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None)
def report_cmd(
    config_path: Path,
    day: str | None,
    catch_up: bool,
    grace_minutes: int | None,
    out_dir: Path | None,
) -> None:
    """生成日报 Write the daily report (JSON + XLSX) and print the paths."""
    from datetime import UTC

    from central.db.migrate import upgrade
    from central.db.session import make_engine, make_session_factory
    from central.reports.daily import latest_closed_day, produce
    from central.reports.record import due_days, records

    if day is not None and catch_up:
        raise click.UsageError("--date 与 --catch-up 不能同时使用 / give --date or --catch-up")
    cfg = _config(config_path)
    if grace_minutes is not None:  # bounded like the config field by click.IntRange
        report = cfg.report.model_copy(update={"grace_minutes": grace_minutes})
        cfg = cfg.model_copy(update={"report": report})
    target = out_dir or cfg.report_dir
    on_file = records(target)  # read once; produce adds each report it writes
    closed = latest_closed_day(datetime.now(UTC), cfg)
    if day is not None:
        try:
            days: list[date] = [datetime.strptime(day, "%Y-%m-%d").date()]
        except ValueError as exc:
            raise click.BadParameter(f"{day!r} is not YYYY-MM-DD", param_hint="--date") from exc
    elif catch_up:
        days = due_days(on_file, closed, max_days=cfg.report.max_catch_up_days)
    else:
        days = [closed]
    if not days:  # the timer's usual case: stay quiet
        logging.getLogger(__name__).info("no report due: %s and earlier are on file", closed)
        return
    upgrade(cfg.database_url)
    engine = make_engine(cfg.database_url)
    try:
        for the_day in days:  # oldest first: each report's late additions start after the last
            with make_session_factory(engine)() as session:
                paths = produce(
                    session=session, config=cfg, day=the_day, out_dir=target, reports=on_file
                )
            for path in paths:
                click.echo(str(path))
    finally:
        engine.dispose()


@cli.group("user")
def user_group() -> None:
    """控制台账户 Console accounts."""


ROLE_HELP = "staff 监测员 | head 站长 | bureau 省局 (every site, read-only) | admin"


@user_group.command("add")
@click.argument("name")
@click.option(
    "--config", "config_path", type=click.Path(exists=True, path_type=Path), required=True
)
@click.option(
    "--role", type=click.Choice(["staff", "head", "bureau", "admin"]), required=True, help=ROLE_HELP
)
@click.option("--site", "sites", multiple=True, help="a site id of the config (repeatable)")
@click.option("--display-name", default="", help="name shown in the console, e.g. 张三")
@click.option("--phone", default=None, help="mobile number (for the duty roster)")
@click.option(
    "--password-env",
    default=None,
    help="read the password from this environment variable (else it is asked for)",
)
def user_add_cmd(
    name: str,
    config_path: Path,
    role: str,
    sites: tuple[str, ...],
    display_name: str,
    phone: str | None,
    password_env: str | None,
) -> None:
    """新建账户 Create a console account."""
    from datetime import UTC

    from central import accounts

    cfg = _config(config_path)
    password = _password(password_env)
    with _accounts_session(cfg) as session:
        accounts.create_user(
            session=session,
            name=name,
            password=password,
            role=accounts.Role(role),
            sites=list(sites),
            known_sites=cfg.sites,
            display_name=display_name,
            phone=phone,
            now=datetime.now(UTC),
        )
    where = ", ".join(sites) or "全部站点 every site"
    click.echo(f"已创建 created {name} ({accounts.Role(role).label}; {where})")


def _password(env: str | None) -> str:
    import os

    if env is None:
        value: str = click.prompt("密码 Password", hide_input=True, confirmation_prompt=True)
        return value
    value = os.environ.get(env, "")
    if not value:
        raise click.UsageError(f"环境变量 {env} 为空 / ${env} is empty")
    return value


@contextmanager
def _accounts_session(cfg: CentralConfig) -> Iterator[Session]:
    """A session on the (migrated) database, committed at the end; an AccountError becomes the
    command's error message."""
    from central import accounts
    from central.db.migrate import upgrade
    from central.db.session import make_engine, make_session_factory

    upgrade(cfg.database_url)
    engine = make_engine(cfg.database_url)
    try:
        with make_session_factory(engine)() as session:
            try:
                yield session
            except accounts.AccountError as exc:
                raise click.ClickException(str(exc)) from exc
            session.commit()
    finally:
        engine.dispose()


CONFIG_OPTION = click.option(
    "--config", "config_path", type=click.Path(exists=True, path_type=Path), required=True
)


@user_group.command("passwd")
@click.argument("name")
@CONFIG_OPTION
@click.option("--password-env", default=None, help="read the new password from this variable")
def user_passwd_cmd(name: str, config_path: Path, password_env: str | None) -> None:
    """修改密码 Set a new password (ends the account's open sessions)."""
    from central import accounts

    password = _password(password_env)
    with _accounts_session(_config(config_path)) as session:
        accounts.set_password(session=session, name=name, password=password)
    click.echo(f"已修改 password changed: {name}")


@user_group.command("disable")
@click.argument("name")
@CONFIG_OPTION
@click.option("--enable", is_flag=True, help="enable the account again")
def user_disable_cmd(name: str, config_path: Path, enable: bool) -> None:
    """停用账户 Disable an account (its sessions end at once), or --enable it again."""
    from central import accounts

    with _accounts_session(_config(config_path)) as session:
        accounts.set_active(session=session, name=name, active=enable)
    click.echo(f"{'已启用 enabled' if enable else '已停用 disabled'}: {name}")


@cli.group("export")
def export_group() -> None:
    """导出数据 Export data for use elsewhere."""


@export_group.command("coco")
@CONFIG_OPTION
@click.option(
    "--since",
    type=click.DateTime(["%Y-%m-%d"]),
    required=True,
    help="起始日期 first day YYYY-MM-DD (capture time, the config's timezone)",
)
@click.option(
    "--until",
    type=click.DateTime(["%Y-%m-%d"]),
    required=True,
    help="结束日期 last day YYYY-MM-DD, included",
)
@click.option("--site", "sites", multiple=True, help="only this site (repeatable; default all)")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="the zip to write (replaced whole, never left half-written)",
)
def export_coco_cmd(
    config_path: Path, since: datetime, until: datetime, sites: tuple[str, ...], out: Path
) -> None:
    """训练数据集 Reviewed events' frames as COCO Camera Traps + MegaDetector JSON in a zip."""
    from zoneinfo import ZoneInfo

    from central import datasets
    from central.db.migrate import upgrade
    from central.db.session import make_engine, make_session_factory

    cfg = _config(config_path)
    if until.date() < since.date():
        raise click.UsageError("--until 早于 --since / --until is before --since")
    unknown = sorted(set(sites) - set(cfg.sites))
    if unknown:
        raise click.BadParameter(
            f"未知站点 unknown site(s): {', '.join(unknown)}", param_hint="--site"
        )
    tz = ZoneInfo(cfg.timezone)
    start, end = datasets.day_window(since.date(), until.date(), tz)
    upgrade(cfg.database_url)
    engine = make_engine(cfg.database_url)
    try:
        with make_session_factory(engine)() as session:
            summary = datasets.export(
                session=session,
                evidence_dir=cfg.evidence_dir,
                tz=tz,
                since=start,
                until=end,
                out=out,
                sites=set(sites) or None,
                station=cfg.report.station_name,
                catalogue=cfg.species_catalogue,
            )
    finally:
        engine.dispose()
    click.echo(
        f"{summary.path}: 图片 images {summary.images}（空 empty {summary.empty}），"
        f"标注 annotations {summary.annotations}，序列 sequences {summary.sequences}，"
        f"{summary.bytes / 1e6:.1f} MB，{summary.seconds:.1f} s"
    )
    if summary.skipped:
        left = ", ".join(f"{k} {v}" for k, v in sorted(summary.skipped.items()))
        click.echo(f"未导出 left out: {left}")


@cli.group("release")
def release_group() -> None:
    """模型发布 Signed model releases for the nodes to pull."""


@release_group.command("publish")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--config", "config_path", type=click.Path(exists=True, path_type=Path), required=True
)
@click.option(
    "--key",
    "key_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="ed25519 signing key (`wildwatch models keygen`), mode 0600",
)
@click.option("--version", "version", required=True, help="release version, e.g. 2026.12.03-1")
@click.option(
    "--notify/--no-notify",
    default=True,
    show_default=True,
    help="send `update` over MQTT to every node of evidence.uploaders (else they find it within "
    "their updates.check_s)",
)
def release_publish_cmd(
    src: Path, config_path: Path, key_path: Path, version: str, notify: bool
) -> None:
    """发布 Sign every file of SRC as release VERSION and make it the one nodes pull."""
    from central.releases import publish, releases_dir
    from models.release import ReleaseError

    cfg = _config(config_path)
    try:
        manifest = publish(root=releases_dir(cfg), src=src, version=version, key_path=key_path)
    except (ReleaseError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"已发布 published {manifest.version}: {len(manifest.files)} file(s), "
        f"{manifest.total_bytes} bytes, key {manifest.key_id}"
    )
    for entry in manifest.files:
        click.echo(f"  {entry.role.value:8} {entry.name}  {entry.sha256[:16]}…  {entry.size}")
    if notify:
        _notify_nodes(cfg)


# Long enough for a broker on the far side of a 4G link; the nodes check by themselves anyway.
NOTIFY_TIMEOUT_S = 10.0


def _notify_nodes(cfg: CentralConfig) -> None:
    """Tell the nodes over MQTT that a release is waiting (one short-lived connection)."""
    from broker.client import BrokerAddress, MqttLink
    from central.releases import announce

    mqtt = cfg.mqtt
    link = MqttLink(
        f"{mqtt.client_id}-release"[:48],
        BrokerAddress(
            host=mqtt.host,
            port=mqtt.port,
            username=mqtt.username,
            password=mqtt.password.get_secret_value() if mqtt.password else None,
            ca_file=mqtt.ca_file,
        ),
        clean_session=True,
    )
    link.start()
    try:
        if not link.wait_connected(NOTIFY_TIMEOUT_S):
            click.echo(
                f"未能连接消息代理，节点将按 check_s 自行检查 / broker {mqtt.host}:{mqtt.port} not "
                "reachable: nodes find the release at their next check",
                err=True,
            )
            return
        told = announce(
            config=cfg,
            send=lambda topic, payload: link.publish(topic, payload).wait(NOTIFY_TIMEOUT_S),
        )
    finally:
        link.stop()
    click.echo(f"已通知 notified {len(told)} node(s): {', '.join(told) or '-'}")
