"""A repository bundle sent to `POST /clusters/{name}/apply`: {relative path: file content} plus the
root definition file. Paths are checked before anything touches the disk; the definition is then
validated by `moorage.spec.loader.load` in a private temporary directory."""

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from moorage.server.registries import needs_of as registry_needs
from moorage.spec.content import ResolvedCluster
from moorage.spec.digest import entry_digests
from moorage.spec.loader import LoadOptions, UsageError, load
from moorage.spec.models import GitRepository
from moorage.spec.protocol import MAX_MESSAGE_BYTES

MAX_FILES = 500
MAX_PATH_CHARS = 512
# the bundle travels to the agent inside one JobMessage; leave room for the message's other fields
MAX_BUNDLE_BYTES = MAX_MESSAGE_BYTES - 8 * 1024
DEFAULT_JOB_TIMEOUT_SECONDS = 420  # ankra-spec §7.1 JobConfiguration.create_job_timeout


class BundleError(ValueError):
    """The bundle itself is unusable (paths, count, size): nothing was validated."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.too_large = too_large


@dataclass
class BundleCheck:
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    timeout_seconds: int = DEFAULT_JOB_TIMEOUT_SECONDS
    addons: list[str] = field(default_factory=list)
    # the repo-relative files the definition is made of, and a digest per entry (when valid)
    files: list[str] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)
    # the registries the add-ons fetch from, with the credential each names (server.registries)
    registries: list[dict[str, Any]] = field(default_factory=list)
    # what a sync job adds to its payload: the sealed registry credentials (ciphertext only)
    sealed: dict[str, str] = field(default_factory=dict)
    # the definition itself, for the checks that need the network (charts' values schemas)
    resolved: ResolvedCluster | None = field(default=None, repr=False, compare=False)
    git_repository: GitRepository | None = None  # where the definition says it lives

    @property
    def ok(self) -> bool:
        return not self.errors


def check_path(path: str) -> str:
    """`path` if it is a plain relative path inside the bundle, else BundleError naming the rule."""
    if not path or len(path) > MAX_PATH_CHARS:
        raise BundleError(f"file path must have 1 to {MAX_PATH_CHARS} characters: {path[:80]!r}")
    if "\x00" in path or "\\" in path:
        raise BundleError(f"file path {path!r} contains a NUL byte or a backslash")
    pure = PurePosixPath(path)
    if pure.is_absolute() or path.startswith("~") or ":" in pure.parts[0]:
        raise BundleError(f"file path {path!r} must be relative to the repository root")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise BundleError(f"file path {path!r} must not contain '..', '.' or empty segments")
    return path


def check_bundle(files: dict[str, str], root: str) -> None:
    """Shape checks only (count, paths, size), cheap enough to run before any work."""
    if not files:
        raise BundleError("the bundle holds no files")
    if len(files) > MAX_FILES:
        raise BundleError(f"the bundle holds {len(files)} files; at most {MAX_FILES} are accepted")
    for path in files:
        check_path(path)
    check_path(root)
    if root not in files:
        raise BundleError(f"the root file {root!r} is not in the bundle")
    size = len(json.dumps({"files": files, "root": root}).encode())
    if size > MAX_BUNDLE_BYTES:
        raise BundleError(
            f"the bundle is {size} bytes; one apply carries at most {MAX_BUNDLE_BYTES} bytes", too_large=True
        )


def validate_bundle(files: dict[str, str], root: str) -> BundleCheck:
    """Validate the definition (SOPS values are not decrypted: the server holds no keys)."""
    check_bundle(files, root)
    with tempfile.TemporaryDirectory(prefix="moorage-bundle-") as tmp:
        base = Path(tmp)
        for rel, content in sorted(files.items()):
            target = base / rel
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content, encoding="utf-8")
            except (OSError, UnicodeEncodeError):
                raise BundleError(f"file path {rel!r} clashes with another file of the bundle") from None
        return validate_tree(base, root)


def validate_tree(base: Path, root: str) -> BundleCheck:
    """Validate the definition whose root file is `base/root`, confined to `base`."""
    try:
        result = load(base / root, LoadOptions(decrypt=False), repo_root=base)
    except UsageError as e:
        raise BundleError(str(e).replace(f"{base}/", "")) from None
    check = BundleCheck(
        errors=[i.to_dict() for i in result.report.errors],
        warnings=[i.to_dict() for i in result.report.warnings],
        files=list(result.files),
    )
    if result.resolved is not None and check.ok:
        check.digests = entry_digests(result.resolved)
    if result.cluster is not None:
        check.git_repository = result.cluster.spec.git_repository
    if result.resolved is not None and result.resolved.addons:
        check.addons = sorted(result.resolved.addons)
        check.registries = registry_needs(result.resolved)
        check.resolved = result.resolved
        check.timeout_seconds = max(
            max(a.job_configuration.create_job_timeout, a.job_configuration.update_job_timeout)
            for a in result.resolved.addons.values()
        )
    return check
