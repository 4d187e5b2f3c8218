"""What the HTTP API needs from the messaging side. `moorage.server.bus.NatsBus` implements it;
tests use a recording fake."""

from typing import Protocol

from moorage.spec.protocol import JobMessage


class Bus(Protocol):
    async def publish_job(self, job: JobMessage) -> None:
        """Queue the job durably for its cluster's agent (JetStream); raise if it could not be queued."""

    async def agents_changed(self) -> None:
        """Agents were added, revoked, rotated or deleted: regenerate NATS users and consumers."""
