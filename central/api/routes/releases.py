"""Model releases for the nodes (node token, as for evidence uploads): the latest version, its
signed manifest and signature, and each file."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import FileResponse

from central import messages, releases
from central.api.deps import ConfigDep, UploaderDep
from central.schemas import ReleaseLatestPublic
from models.release import ReleaseVersion

router = APIRouter(prefix="/api/releases", tags=["releases"])

VersionParam = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$")]
NameParam = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]


@router.get("/latest", response_model=ReleaseLatestPublic)
def read_latest(config: ConfigDep, node: UploaderDep) -> ReleaseLatestPublic:
    """The release version nodes should run; 404 before the first publish."""
    version: ReleaseVersion | None = releases.latest_version(releases.releases_dir(config))
    if version is None:
        raise HTTPException(status_code=404, detail=messages.RELEASE_NONE)
    return ReleaseLatestPublic(version=version)


@router.get("/{version}/{name}", response_class=FileResponse)
def read_release_file(
    config: ConfigDep, node: UploaderDep, version: VersionParam, name: NameParam
) -> FileResponse:
    """One file of a release, `release.json` or `release.sig` as they were published."""
    path = releases.release_file(releases.releases_dir(config), version, name)
    if path is None:
        raise HTTPException(status_code=404, detail=messages.RELEASE_NOT_FOUND)
    return FileResponse(path, media_type="application/octet-stream")
