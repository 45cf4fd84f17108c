"""Console accounts: `wildwatch central user add`, roles and sites checked, passwords hashed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from central import accounts
from central.config import CentralConfig
from central.db.models import User
from wildwatch.cli import cli as wildwatch


def _config_file(config: CentralConfig, tmp_path: Path) -> Path:
    path = tmp_path / "central.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), allow_unicode=True))
    return path


def test_user_add_from_the_command_line(
    central_config: CentralConfig, tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    path = _config_file(central_config, tmp_path)
    runner = CliRunner()
    result = runner.invoke(
        wildwatch,
        [
            "central",
            "user",
            "add",
            "wang",
            "--config",
            str(path),
            "--role",
            "staff",
            "--site",
            "changxing",
            "--display-name",
            "王伟",
            "--password-env",
            "WW_PW",
        ],
        env={"WW_PW": "a long enough password"},
    )
    assert result.exit_code == 0, result.output
    assert "已创建 created wang" in result.output
    with session_factory() as session:
        user = session.query(User).filter_by(name="wang").one()
        assert user.role == "staff" and user.sites == ["changxing"]
        assert user.password_hash.startswith("$argon2id$")
        assert "a long enough password" not in user.password_hash
        assert (
            accounts.authenticate(session=session, name="wang", password="a long enough password")
            is not None
        )
        assert accounts.authenticate(session=session, name="wang", password="wrong") is None
    # refused: the same name again, an unknown site, a bureau tied to a site, a short password
    for args, env, says in [
        (
            ["wang", "--role", "staff", "--site", "changxing"],
            "a long enough password",
            "用户已存在",
        ),
        (["li", "--role", "staff", "--site", "nowhere"], "a long enough password", "未配置的站点"),
        (
            ["sheng", "--role", "bureau", "--site", "changxing"],
            "a long enough password",
            "sees every site",
        ),
        (["zhao", "--role", "staff"], "a long enough password", "needs at least one --site"),
        (["qian", "--role", "head", "--site", "changxing"], "short", "密码太短"),
    ]:
        result = runner.invoke(
            wildwatch,
            [
                "central",
                "user",
                "add",
                *args[:1],
                "--config",
                str(path),
                *args[1:],
                "--password-env",
                "WW_PW",
            ],
            env={"WW_PW": env},
        )
        assert result.exit_code == 1 and says in result.output, (args, result.output)


def _user(
    session: Session, config: CentralConfig, name: str, role: accounts.Role, sites: list[str]
) -> User:
    return accounts.create_user(
        session=session,
        name=name,
        password="first password!",
        role=role,
        sites=sites,
        known_sites=config.sites,
        now=datetime.now(UTC),
    )


def test_a_new_password_ends_open_sessions(
    central_config: CentralConfig, session_factory: sessionmaker[Session]
) -> None:
    now = datetime.now(UTC)
    with session_factory.begin() as session:
        user = _user(session, central_config, "wang", accounts.Role.STAFF, ["changxing"])
        token = accounts.open_session(session=session, user=user, now=now)
    with session_factory.begin() as session:
        assert accounts.account_for(session=session, token=token, now=now) is not None
        accounts.set_password(session=session, name="wang", password="second password!")
    with session_factory() as session:
        assert accounts.account_for(session=session, token=token, now=now) is None
        later = now + accounts.SESSION_TTL
        assert accounts.account_for(session=session, token="unknown", now=later) is None


def test_sessions_expire(
    central_config: CentralConfig, session_factory: sessionmaker[Session]
) -> None:
    now = datetime.now(UTC)
    with session_factory.begin() as session:
        user = _user(session, central_config, "li", accounts.Role.BUREAU, [])
        token = accounts.open_session(session=session, user=user, now=now)
    with session_factory() as session:
        account = accounts.account_for(session=session, token=token, now=now)
        assert account is not None and account.scope.sites is None
        assert (
            accounts.account_for(session=session, token=token, now=now + accounts.SESSION_TTL)
            is None
        )


@pytest.mark.parametrize("role", list(accounts.Role))
def test_roles_say_what_they_may_do(role: accounts.Role) -> None:
    assert role.label and " " in role.label  # Chinese, then English
    assert role.may_review == (role is not accounts.Role.BUREAU)
    assert role.may_sign == (role in (accounts.Role.HEAD, accounts.Role.ADMIN))


def test_passwd_and_disable_from_the_command_line(
    central_config: CentralConfig, tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    path = _config_file(central_config, tmp_path)
    now = datetime.now(UTC)
    with session_factory.begin() as session:
        user = _user(session, central_config, "wang", accounts.Role.STAFF, ["changxing"])
        token = accounts.open_session(session=session, user=user, now=now)
    runner = CliRunner()
    result = runner.invoke(
        wildwatch,
        ["central", "user", "passwd", "wang", "--config", str(path), "--password-env", "WW_PW"],
        env={"WW_PW": "second password!"},
    )
    assert result.exit_code == 0 and "password changed" in result.output, result.output
    with session_factory() as session:
        assert accounts.account_for(session=session, token=token, now=now) is None
        assert accounts.authenticate(session=session, name="wang", password="second password!")
        token = accounts.open_session(
            session=session,
            user=accounts.authenticate(session=session, name="wang", password="second password!")
            or user,
            now=now,
        )
        session.commit()
    result = runner.invoke(wildwatch, ["central", "user", "disable", "wang", "--config", str(path)])
    assert result.exit_code == 0 and "已停用" in result.output
    with session_factory() as session:
        assert accounts.account_for(session=session, token=token, now=now) is None
        assert (
            accounts.authenticate(session=session, name="wang", password="second password!") is None
        )
    result = runner.invoke(
        wildwatch, ["central", "user", "disable", "wang", "--enable", "--config", str(path)]
    )
    assert result.exit_code == 0
    with session_factory() as session:
        assert accounts.authenticate(session=session, name="wang", password="second password!")
    result = runner.invoke(
        wildwatch, ["central", "user", "disable", "nobody", "--config", str(path)]
    )
    assert result.exit_code == 1 and "无此用户" in result.output
