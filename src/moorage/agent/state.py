"""The agent's side of add-on state reports: remember what was last sent, send only changes, and a
full snapshot after a start or a reconnect (or a failed publish), split into parts that fit the
protocol's size limit. Pure bookkeeping; the runner publishes what `reports` returns."""

import json
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime

from moorage.spec.protocol import STATE_PART_BYTES, AddonObservation, StateReport


def _fingerprint(obs: AddonObservation) -> str:
    # the cause and the commit alone do not make a change worth sending
    return json.dumps(obs.model_dump(mode="json", exclude={"cause"}), sort_keys=True)


class StateTracker:
    def __init__(self, cluster_id: str) -> None:
        self.cluster_id = cluster_id
        started = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        self.session = f"{started}-{secrets.token_hex(4)}"
        self._seq = 0
        self._sent: dict[str, str] = {}  # add-on name -> fingerprint of what the server has
        self.need_full = True

    def reset(self) -> None:
        """The server may have missed messages (reconnect, failed publish): the next report is full."""
        self.need_full = True

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def reports(self, observations: Iterable[AddonObservation], *, complete: bool) -> list[StateReport]:
        """The messages to send for these observations. `complete` says the observations cover every
        add-on of the definition (a sweep, a sync), so a full snapshot can be sent and add-ons not
        in it are reported removed."""
        current = {o.name: o for o in observations}
        if self.need_full and complete:
            return self._snapshot(current)
        changed = [o for name, o in current.items() if self._sent.get(name) != _fingerprint(o)]
        removed = sorted(set(self._sent) - set(current)) if complete else []
        if not changed and not removed:
            return []
        parts = _split(changed) or [[]]
        messages = []
        for i, part in enumerate(parts):
            messages.append(
                StateReport(
                    cluster_id=self.cluster_id,
                    session=self.session,
                    seq=self._next(),
                    addons=part,
                    removed=removed if i == len(parts) - 1 else [],
                )
            )
        return messages

    def _snapshot(self, current: dict[str, AddonObservation]) -> list[StateReport]:
        parts = _split(list(current.values())) or [[]]
        snapshot = secrets.token_hex(8)
        return [
            StateReport(
                cluster_id=self.cluster_id,
                session=self.session,
                seq=self._next(),
                snapshot=snapshot,
                part=i,
                parts=len(parts),
                all_names=sorted(current) if i == len(parts) - 1 else None,
                addons=part,
            )
            for i, part in enumerate(parts)
        ]

    def sent(self, reports: Iterable[StateReport]) -> None:
        """These messages reached the stream: remember what the server now has."""
        for report in reports:
            if report.snapshot is not None and report.part == 0:
                self._sent = {}
            for obs in report.addons:
                self._sent[obs.name] = _fingerprint(obs)
            for name in report.removed:
                self._sent.pop(name, None)
            if report.snapshot is not None and report.all_names is not None:
                keep = set(report.all_names)
                self._sent = {k: v for k, v in self._sent.items() if k in keep}
                self.need_full = False


def _split(observations: list[AddonObservation]) -> list[list[AddonObservation]]:
    """Observations in groups whose JSON stays under STATE_PART_BYTES (one observation per group at
    least; a single observation is bounded by its own field limits)."""
    parts: list[list[AddonObservation]] = []
    current: list[AddonObservation] = []
    size = 0
    for obs in observations:
        length = len(obs.model_dump_json()) + 1
        if current and size + length > STATE_PART_BYTES:
            parts.append(current)
            current, size = [], 0
        current.append(obs)
        size += length
    if current:
        parts.append(current)
    return parts
