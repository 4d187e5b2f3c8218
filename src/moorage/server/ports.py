"""What the HTTP API needs from the messaging side. `moorage.server.bus.NatsBus` implements it;
tests use a recording fake."""

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from moorage.spec.protocol import JobMessage, LogChunk


class Bus(Protocol):
    async def publish_job(self, job: JobMessage) -> None:
        """Queue the job durably for its cluster's agent (JetStream); raise if it could not be queued."""

    def log_stream(
        self, cluster_id: str, stream_id: str
    ) -> AbstractAsyncContextManager[AsyncIterator[LogChunk]]:
        """Subscribe to one log stream (before the job that feeds it is queued); yields its chunks."""

    async def cancel_jobs(self, cluster_id: str, job_ids: list[str]) -> None:
        """Tell the cluster's agent, if connected, to stop these jobs (they end as cancelled)."""

    async def agents_changed(self) -> None:
        """Agents were added, revoked, rotated or deleted: regenerate NATS users and consumers."""
