from datetime import UTC, datetime

import pytest

from moorage.spec import protocol
from moorage.spec.protocol import JobAction, JobKind, JobMessage, ProtocolError, ResultMessage


def job(**overrides: object) -> JobMessage:
    fields: dict[str, object] = {
        "job_id": "j1",
        "operation_id": "o1",
        "cluster_id": "c1",
        "kind": JobKind.WRITE,
        "action": JobAction.SYNC,
        "timeout_seconds": 60,
        "created_at": datetime(2026, 11, 23, tzinfo=UTC),
    }
    fields.update(overrides)
    return JobMessage.model_validate(fields)


def test_round_trip() -> None:
    original = job(payload={"files": {"a.yaml": "x: 1"}})
    assert protocol.decode(protocol.encode(original), JobMessage) == original


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "invalid JobMessage"),
        (b'{"job_id": "j"}', "invalid JobMessage"),
        (b"x" * (protocol.MAX_MESSAGE_BYTES + 1), "exceeds"),
    ],
)
def test_malformed_or_oversized_messages_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        protocol.decode(data, JobMessage)


def test_unknown_fields_are_refused() -> None:
    data = protocol.encode(ResultMessage(job_id="j", cluster_id="c", state=protocol.JobState.SUCCESS))
    tampered = data[:-1] + b',"extra": 1}'
    with pytest.raises(ProtocolError, match="extra"):
        protocol.decode(tampered, ResultMessage)


def test_encode_refuses_what_the_other_side_would_refuse() -> None:
    with pytest.raises(ProtocolError, match="exceeds"):
        protocol.encode(job(payload={"blob": "x" * protocol.MAX_MESSAGE_BYTES}))


def test_agent_permissions_cover_only_its_own_cluster() -> None:
    perms = protocol.agent_permissions("abc")
    allowed = perms["publish"]["allow"] + perms["subscribe"]["allow"]
    assert all("abc" in subject or subject == "$JS.API.INFO" for subject in allowed)
    assert not any(">" in s and "abc" not in s for s in allowed)
    assert protocol.heartbeat_subject("abc") in perms["publish"]["allow"]
    assert protocol.jobs_subject("abc") not in perms["publish"]["allow"]  # agents never enqueue jobs
