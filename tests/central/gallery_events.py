"""Confirmed events with evidence crops on disk, as central holds them after nodes uploaded."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from central import crud
from central.db.models import EvidenceFile
from tests.central.conftest import make_event

BIRD_BOX = {"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.3, "category": "bird", "label": "bird"}


def store_event(
    session: Session,
    evidence_dir: Path,
    *,
    crops: Sequence[bytes],
    boxes: int = 1,
    species: str | None = None,
    decision: str | None = "confirmed",
    named: str | None = None,
    box_index: int | None = None,
    captured_at: datetime | None = None,
    rule: str | None = None,
    frame: bytes | None = None,
    box_list: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """An event with `boxes` bird boxes and the node's crops (`<stem>_crop<i>.jpg`) stored
    under `evidence_dir`; reviewed with `decision` (None: left unreviewed), naming `named`;
    an observation, else an anomaly of `rule`; `frame` stored beside the crops (the frame they
    were cut from); `box_list` the boxes (else `boxes` boxes side by side)."""
    listed = box_list or [
        {**BIRD_BOX, "x": 0.05 + 0.3 * i, "confidence": 0.8} for i in range(boxes)
    ]
    fields: dict[str, Any] = {
        "boxes": list(listed),
        "count": len(listed),
        "captured_at": captured_at or datetime(2026, 12, 1, 2, tzinfo=UTC),
    }
    if rule is not None:
        fields.update(kind="anomaly", rule=rule, severity="warning")
    if species is not None:
        fields["species"] = {"scientific_name": species, "confidence": 0.6}
    event = make_event(**fields)
    event_id = str(event.event_id)
    crud.insert_event(session=session, payload=event, received_at=datetime.now(UTC))
    files = {f"IMG_0001_ab12cd34_crop{i}.jpg": data for i, data in enumerate(crops)}
    if frame is not None:
        files["IMG_0001_ab12cd34.jpg"] = frame
    for name, data in files.items():
        relative = Path("changxing") / "cx-01" / event_id / name
        (evidence_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        (evidence_dir / relative).write_bytes(data)
        session.add(
            EvidenceFile(
                event_id=event_id,
                name=name,
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
                path=str(relative),
                received_at=datetime.now(UTC),
            )
        )
    if decision is not None:
        crud.review_event(
            session=session,
            event_id=event_id,
            decision=decision,
            reviewer="王五",
            note="",
            at=datetime.now(UTC),
            species=named,
            box_index=box_index,
        )
    session.flush()
    return event_id
