"""Device tags: free labels that become inventory groups (`tag_<name>`)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from fleet.audit.service import record
from fleet.automation.models import DeviceTag
from fleet.devices.models import Device

TAG_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_TAGS = 20


class TagRefused(ValueError):
    """A tag that cannot be used; `index` is its position in the request."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


def check_tags(tags: Sequence[str]) -> list[str]:
    for index, tag in enumerate(tags):
        if not TAG_RE.match(tag):
            raise TagRefused(
                index,
                "use lower-case letters, digits and _, starting with a letter, at most 40",
            )
    return sorted(set(tags))[:MAX_TAGS]


def tags_of(*, session: Session, device_ids: Sequence[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    query = select(DeviceTag.device_id, DeviceTag.tag).where(DeviceTag.device_id.in_(device_ids))
    for device_id, tag in session.execute(query.order_by(DeviceTag.tag)):
        found.setdefault(device_id, []).append(tag)
    return found


def set_tags(*, session: Session, actor: str, device: Device, tags: Sequence[str]) -> list[str]:
    """Replace the device's tags (audited when they change)."""
    wanted = check_tags(tags)
    before = tags_of(session=session, device_ids=[device.id]).get(device.id, [])
    if before == wanted:
        return wanted
    session.execute(delete(DeviceTag).where(DeviceTag.device_id == device.id))
    session.add_all(DeviceTag(device_id=device.id, tag=tag) for tag in wanted)
    session.flush()
    record(
        session=session,
        actor=actor,
        action="device.tags.set",
        target_type="device",
        target_id=device.id,
        prison_code=device.prison_code,
        detail={"before": before, "after": wanted},
    )
    return wanted
