"""`wildwatch models` commands: list, pull, import and verify the pinned models."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from models import registry

logger = logging.getLogger(__name__)

_STORE_HELP = (
    f"Model store directory (default: ${registry.STORE_ENV}, else {registry.DEFAULT_STORE})."
)

cli = click.Group(
    "models",
    help=(
        "模型管理 Manage the detection and classification models.\n\n"
        "Weights are pinned by sha256 in the packaged manifest and never committed. Offline "
        "sites copy the files onto the machine and run `models import DIR`; online sites run "
        "`models pull` (optionally through a mirror). `models verify` checks the store."
    ),
)


def _store(value: Path | None) -> Path:
    return value if value is not None else registry.default_store()


store_option = click.option(
    "--store",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=_STORE_HELP,
)


@cli.command("list")
@store_option
def list_models(store: Path | None) -> None:
    """List the manifest's models and whether each is installed and verified."""
    root = _store(store)
    status = {r.file: r for r in registry.verify(root)}
    rows = [("ID", "TASK", "INSTALLED", "VERIFIED")]
    for spec in registry.load_manifest().models:
        results = [status[a.file] for a in spec.artefacts()]
        installed = all(r.status is not registry.FileStatus.MISSING for r in results)
        verified = all(r.ok for r in results)
        rows.append((spec.id, spec.task, "yes" if installed else "no", "yes" if verified else "no"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    click.echo(f"store: {root}")


@cli.command("pull")
@store_option
@click.option(
    "--mirror",
    default=None,
    metavar="URL",
    help=(
        f"Download from URL/<file> instead of each model's upstream URL "
        f"(default: ${registry.MIRROR_ENV} when set)."
    ),
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1.0, max=3600.0),
    default=registry.DOWNLOAD_TIMEOUT_S,
    show_default=True,
    help="Network timeout per request in seconds.",
)
def pull_models(store: Path | None, mirror: str | None, timeout: float) -> None:
    """Download missing or corrupt model files and verify their sha256."""
    root = _store(store)
    base_url = mirror or os.environ.get(registry.MIRROR_ENV) or None
    try:
        installed = registry.pull(root, base_url=base_url, timeout=timeout)
    except registry.RegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"installed {len(installed)} file(s) into {root}")
    for name in installed:
        click.echo(f"  {name}")


@cli.command("import")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@store_option
def import_models(src: Path, store: Path | None) -> None:
    """Copy the model files found in SRC into the store, verifying each sha256."""
    root = _store(store)
    try:
        installed = registry.import_dir(src, root)
    except registry.RegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"imported {len(installed)} file(s) into {root}")
    for name in installed:
        click.echo(f"  {name}")
    missing = sorted(set(registry.load_manifest().artefacts()) - set(installed))
    for name in missing:
        click.echo(f"  not found in {src}: {name}", err=True)


@cli.command("verify")
@store_option
def verify_models(store: Path | None) -> None:
    """Check every model file in the store; exit code 1 if any is missing or corrupt."""
    root = _store(store)
    results = registry.verify(root)
    for result in results:
        click.echo(f"{result.status.value:8} {result.file}  ({', '.join(result.models)})")
    bad = [r for r in results if not r.ok]
    if bad:
        click.echo(
            f"{len(bad)} file(s) missing or corrupt in {root}: run `wildwatch models import DIR` "
            "or `wildwatch models pull`",
            err=True,
        )
        raise click.exceptions.Exit(1)
    click.echo(f"all {len(results)} file(s) verified in {root}")


@cli.command("keygen")
@click.argument("key_file", type=click.Path(dir_okay=False, path_type=Path))
def keygen(key_file: Path) -> None:
    """Make an ed25519 key pair for signing releases: KEY_FILE (0600) and KEY_FILE.pub.

    Keep KEY_FILE on central only; put the public key printed here in every node's
    `updates.public_key`.
    """
    try:
        from models.release import ReleaseError, generate_keys
    except ModuleNotFoundError as exc:  # PyNaCl comes with the edge and central extras
        raise click.ClickException(
            f"未安装 not installed here ({exc.name} missing): pip install 'wildwatch[central]'"
        ) from exc
    try:
        public_path, public = generate_keys(key_file)
    except (ReleaseError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"签名私钥 signing key: {key_file} (0600)")
    click.echo(f"公钥 public key: {public_path}")
    click.echo(public)
