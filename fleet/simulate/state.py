"""The simulator's state file: each simulated device's identity and counters, kept between runs.

The file holds broker passwords, so it is written with mode 0600. `boot` and `seq` must keep
rising across runs even if the process is killed, so while running the file records values
ahead of the live ones (a reservation); a clean stop records the exact values.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

FORMAT = 1
STATE_FILE_NAME = "simulator.json"


class SimulatorError(Exception):
    """A problem the person running the simulator can fix; the message says how."""


@dataclass
class SimIdentity:
    """One enrolled simulated device as the device itself would remember it."""

    device_id: str
    serial: str
    password: str = field(repr=False)
    prison: str
    kind: str
    location: str | None = None
    boot: int = 0
    seq: int = 0
    model: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> SimIdentity:
        return cls(
            device_id=str(doc["device_id"]),
            serial=str(doc["serial"]),
            password=str(doc["password"]),
            prison=str(doc["prison"]),
            kind=str(doc["kind"]),
            location=doc.get("location"),
            boot=int(doc.get("boot", 0)),
            seq=int(doc.get("seq", 0)),
            model={str(k): float(v) for k, v in (doc.get("model") or {}).items()},
        )


def database_label(database_url: str) -> str:
    """The database a state file belongs to, without any password."""
    return make_url(database_url).render_as_string(hide_password=True)


class StateFile:
    """Loads and saves identities; `save(reserve=...)` writes counters ahead of the live ones."""

    def __init__(self, path: Path, database: str) -> None:
        self.path = path
        self.database = database
        self.identities: dict[str, SimIdentity] = {}
        # What the file on disk promises: live counters must stay below these.
        self._seq_ceiling: dict[str, int] = {}
        self._boot_ceiling: dict[str, int] = {}
        self._lock = threading.Lock()

    def load(self) -> StateFile:
        if not self.path.exists():
            return self
        try:
            doc = orjson.loads(self.path.read_bytes())
            if doc.get("format") != FORMAT:
                raise ValueError(f"format {doc.get('format')!r}, expected {FORMAT}")
            recorded = doc.get("database")
            devices = [SimIdentity.from_json(d) for d in doc.get("devices", [])]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SimulatorError(
                f"the simulator state file {self.path} cannot be read ({exc}). Move it aside to "
                "start afresh (its devices will then be enrolled again), or pass --state-file."
            ) from exc
        if recorded != self.database:
            raise SimulatorError(
                f"the simulator state file {self.path} belongs to the database {recorded}, not "
                f"{self.database}. Pass --state-file with another path for this database."
            )
        self.identities = {ident.device_id: ident for ident in devices}
        for ident in devices:
            self._seq_ceiling[ident.device_id] = ident.seq
            self._boot_ceiling[ident.device_id] = ident.boot
        return self

    def add(self, identities: Iterable[SimIdentity]) -> None:
        with self._lock:
            for ident in identities:
                self.identities[ident.device_id] = ident

    def forget(self, device_ids: Iterable[str]) -> None:
        with self._lock:
            for device_id in device_ids:
                self.identities.pop(device_id, None)

    def needs_save(self, ident: SimIdentity, *, seq_margin: int, boot_margin: int) -> bool:
        """Whether the live counters are closing in on what the file on disk reserves."""
        return ident.seq + seq_margin >= self._seq_ceiling.get(
            ident.device_id, 0
        ) or ident.boot + boot_margin >= self._boot_ceiling.get(ident.device_id, 0)

    def save(self, *, seq_reserve: int = 0, boot_reserve: int = 0) -> None:
        """Write atomically with mode 0600; counters are recorded `*_reserve` ahead."""
        with self._lock:
            devices = []
            seq_ceiling: dict[str, int] = {}
            boot_ceiling: dict[str, int] = {}
            for ident in self.identities.values():
                doc = asdict(ident)
                doc["seq"] = seq_ceiling[ident.device_id] = ident.seq + seq_reserve
                doc["boot"] = boot_ceiling[ident.device_id] = ident.boot + boot_reserve
                devices.append(doc)
            body = orjson.dumps(
                {"format": FORMAT, "database": self.database, "devices": devices},
                option=orjson.OPT_INDENT_2,
            )
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                os.fchmod(fd, 0o600)  # an older leftover .tmp may have been more open
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
            self._seq_ceiling = seq_ceiling
            self._boot_ceiling = boot_ceiling
        log.debug("saved %d simulated identities to %s", len(devices), self.path)
