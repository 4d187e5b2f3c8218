"""Fuzzing of the parsers of untrusted input that had only hand-written cases (issue 18): agent and
server messages, YAML from Git, whole definitions read from a Git tree, and the paths of a Git tree.
Each must answer with its own error type (or a report item), never an unexpected exception, a hang
or a path outside the repository. `make test` runs a few hundred examples per parser;
`make fuzz` runs MOORAGE_FUZZ_EXAMPLES (default there: 20,000)."""

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moorage.server.gitops.git import _safe_path
from moorage.spec import protocol
from moorage.spec.loader import LoadOptions, load
from moorage.spec.report import SpecError
from moorage.spec.yamlsafe import Limits, parse_bytes

T = TypeVar("T")
EXAMPLES = int(os.environ.get("MOORAGE_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
EXAMPLE_REPO = Path(__file__).resolve().parents[2] / "examples" / "gitops-repo"
MESSAGES: list[type[protocol._Message]] = [
    protocol.JobMessage,
    protocol.ResultMessage,
    protocol.HeartbeatMessage,
    protocol.AddonObservation,
    protocol.StateReport,
    protocol.LogChunk,
    protocol.CancelMessage,
]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=30,
)


def outcome(call: Callable[[], T], errors: type[Exception]) -> tuple[T | None, Exception | None]:
    """What `call` returned, or the error of type `errors` it raised (any other error fails the test)."""
    try:
        return call(), None
    except errors as e:
        return None, e


def mutate(data: bytes, edits: list[tuple[int, bytes]]) -> bytes:
    """`data` with each (offset, bytes) edit written over it (offsets wrap around)."""
    out = bytearray(data)
    for offset, chunk in edits:
        at = offset % (len(out) + 1)
        out[at : at + len(chunk)] = chunk
    return bytes(out)


EDITS = st.lists(
    st.tuples(st.integers(0, 1 << 20), st.binary(min_size=1, max_size=8)), min_size=1, max_size=6
)


# ------------------------------------------------------------------ messages between agent and server


@FUZZ
@given(st.sampled_from(MESSAGES), st.binary(max_size=512))
def test_any_bytes_as_a_message_is_a_protocol_error_or_a_message(
    model: type[protocol._Message], data: bytes
) -> None:
    decoded, error = outcome(lambda: protocol.decode(data, model), protocol.ProtocolError)
    assert isinstance(decoded, model) or str(error)


@FUZZ
@given(st.sampled_from(MESSAGES), st.dictionaries(st.text(max_size=16), JSON, max_size=8))
def test_any_json_object_as_a_message_is_a_protocol_error_or_a_message(
    model: type[protocol._Message], fields: dict[str, object]
) -> None:
    decoded, error = outcome(
        lambda: protocol.decode(json.dumps(fields).encode(), model), protocol.ProtocolError
    )
    if decoded is None:
        assert model.__name__ in str(error)
    else:
        assert protocol.decode(protocol.encode(decoded), model) == decoded  # what is accepted round-trips


# ------------------------------------------------------------------ YAML and definitions from Git

SMALL = Limits(max_file_bytes=64 * 1024, max_nodes=2_000, max_depth=32, max_alias_nodes=2_000)
YAMLISH = st.text(alphabet=st.sampled_from(list("ab:-[]{}&*!|>'\"#?,\n \t0.9%@`")), max_size=300)


@FUZZ
@given(YAMLISH | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_any_text_as_yaml_is_documents_or_a_spec_error(text: str) -> None:
    docs, error = outcome(
        lambda: parse_bytes(text.encode("utf-8", "surrogatepass"), "fuzz.yaml", SMALL), SpecError
    )
    assert isinstance(docs, list) or (isinstance(error, SpecError) and error.message)


@FUZZ
@given(st.integers(1, 40))
def test_alias_bombs_stop_at_the_limit(depth: int) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, depth + 1)]
    docs, error = outcome(lambda: parse_bytes("\n".join(lines).encode(), "bomb.yaml", SMALL), SpecError)
    if 10 * 4**depth > SMALL.max_alias_nodes:
        assert isinstance(error, SpecError), f"{10 * 4**depth} nodes through aliases were accepted"
    else:
        assert docs is not None


def _definition_files() -> list[Path]:
    return sorted(p for p in EXAMPLE_REPO.rglob("*.yaml") if "keys" not in p.parts)


@FUZZ
@given(st.sampled_from(_definition_files()), EDITS)
def test_a_corrupted_definition_is_reported_never_raised(
    tmp_path_factory: pytest.TempPathFactory, target: Path, edits: list[tuple[int, bytes]]
) -> None:
    """Any file of a real definition with bytes overwritten: `load` answers with a report (every
    problem an item with a message), whatever the damage."""
    repo = tmp_path_factory.mktemp("repo")
    shutil.copytree(EXAMPLE_REPO, repo, dirs_exist_ok=True)
    victim = repo / target.relative_to(EXAMPLE_REPO)
    victim.write_bytes(mutate(victim.read_bytes(), edits))
    result = load(repo, LoadOptions(decrypt=False, key_optional=True))
    for issue in result.report.issues:
        assert issue.message


# ------------------------------------------------------------------ paths of a Git tree


@FUZZ
@given(
    st.lists(st.sampled_from(["..", ".", "", "a", "b.yaml", "~", "\\", "c:", "%2e%2e", "x y"]), max_size=6)
)
def test_a_tree_path_that_is_accepted_stays_inside_the_repository(parts: list[str]) -> None:
    path = "/".join(parts)
    if _safe_path(path):
        pure = PurePosixPath(path)
        assert not pure.is_absolute()
        assert ".." not in pure.parts
        assert "\\" not in path
