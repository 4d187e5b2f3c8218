"""The helm binary, for every mutation of a release: upgrade --install, rollback, uninstall.

Values go to helm on standard input (`--values -`), so decrypted secrets are never written to disk,
and any secret value that helm echoes in an error is masked before the error leaves this module.

A chart from a registry that needs a credential (`Helm.registry_auth`, keyed by registry URL) is
fetched by `moorage.charts` in this process, with the credential in memory only, and handed to helm
as a local archive in a private temporary directory removed right after: helm never sees the
credential, so it is on no command line, in no helm config file and in no helm cache
(docs/decisions.md)."""

import asyncio
import ipaddress
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from moorage.charts.source import ChartSource, ChartSourceError, RegistryAuth, display

MASK = "********"
_MAX_OUTPUT = 64 << 10


class HelmError(Exception):
    """helm exited non-zero; the message is helm's own error, secrets masked."""

    def __init__(self, message: str, *, temporary: bool) -> None:
        super().__init__(message)
        self.temporary = temporary


# Failures worth another attempt: the network, the API server, a lock held by another operation.
_TEMPORARY_HINTS = (
    "timed out",
    "timeout",
    "connection refused",
    "connection reset",
    "i/o timeout",
    "tls handshake",
    "no such host",
    "too many requests",
    "service unavailable",
    "another operation (install/upgrade/rollback) is in progress",
    "the server is currently unable",
    "etcdserver",
    "context deadline exceeded",
)


def find_helm() -> str:
    for candidate in (os.environ.get("MOORAGE_HELM"), str(Path(sys.executable).parent / "helm")):
        if candidate and Path(candidate).is_file():
            return candidate
    found = shutil.which("helm")
    if not found:
        raise HelmError(
            "the helm binary was not found; run `make tools` or put helm on PATH", temporary=False
        )
    return found


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


@dataclass(frozen=True)
class ChartRef:
    """Where a chart comes from: an HTTP(S) repository or an OCI registry."""

    name: str
    version: str
    repository: str  # https://…, http://… or oci://…

    def args(self) -> list[str]:
        if self.repository.startswith("oci://"):
            ref = f"{self.repository.rstrip('/')}/{self.name}"
            extra = ["--plain-http"] if _loopback(self.repository) else []
            return [ref, "--version", self.version, *extra]
        return [self.name, "--repo", self.repository, "--version", self.version]


async def fetch_chart(chart: ChartRef, auth: RegistryAuth | None) -> bytes:
    """The chart's archive from its registry, with `auth`; a HelmError naming the registry and the
    reason (authentication failed, not found, unreachable) before any helm command runs."""
    try:
        async with ChartSource(chart.repository, auth) as source:
            data, _ = await source.fetch(chart.name, chart.version)
    except ChartSourceError as e:
        raise HelmError(
            f"fetching chart {chart.name} {chart.version} failed: {e.message}", temporary=e.temporary
        ) from None
    return data


_REFUSED = (
    "401 unauthorized",
    "403 forbidden",
    "unauthorized:",
    "authentication required",
    "basic credential not found",
    ": 401",
    ": 403",
)


def _refused(error: HelmError, chart: ChartRef) -> HelmError:
    """helm's own words when a registry refused it without credentials, said as Moorage says it."""
    text = str(error)
    if not any(hint in text.lower() for hint in _REFUSED):
        return error
    return HelmError(
        f"fetching chart {chart.name} {chart.version} failed: registry {display(chart.repository)}: "
        "authentication failed (no credential is set: name one with credential_name in "
        f"spec.helm_registries or registry_credential_name); helm said: {text}",
        temporary=False,
    )


def _loopback(url: str) -> bool:
    # A registry on loopback is a local one (tests, demo, a port-forward): plain HTTP is what it speaks.
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Helm:
    kubeconfig: Path | None = None
    context: str | None = None
    binary: str = field(default_factory=find_helm)
    home: Path | None = None  # HELM_CACHE_HOME/CONFIG_HOME/DATA_HOME root; None = helm's defaults
    # registry URL -> login, for the charts of the definition being deployed (set by the agent)
    registry_auth: dict[str, RegistryAuth] = field(default_factory=dict, repr=False)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.home is not None:
            env |= {
                "HELM_CACHE_HOME": str(self.home / "cache"),
                "HELM_CONFIG_HOME": str(self.home / "config"),
                "HELM_DATA_HOME": str(self.home / "data"),
            }
        return env

    def _base(self) -> list[str]:
        args = [self.binary]
        if self.kubeconfig:
            args.append(f"--kubeconfig={self.kubeconfig}")
        if self.context:
            args.append(f"--kube-context={self.context}")
        return args

    async def run(
        self,
        args: Sequence[str],
        *,
        stdin: bytes | None = None,
        secrets: Iterable[str] = (),
        timeout: float = 900,
        mask_output: bool = True,
    ) -> str:
        """helm's standard output; `secrets` are masked in it (unless not `mask_output`: output that
        is itself the deliverable, as a plugin's rendered manifests) and always in its errors."""
        proc = await asyncio.create_subprocess_exec(
            *self._base(),
            *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._env(),
            start_new_session=True,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
        except (TimeoutError, asyncio.CancelledError):
            proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            message = redact(err.decode(errors="replace")[-_MAX_OUTPUT:], secrets).strip()
            message = message.removeprefix("Error: ")
            temporary = any(hint in message.lower() for hint in _TEMPORARY_HINTS)
            raise HelmError(f"helm {args[0]} failed: {message}", temporary=temporary)
        text = out.decode(errors="replace")
        return redact(text, secrets) if mask_output else text

    async def upgrade_install(
        self,
        release: str,
        namespace: str,
        chart: ChartRef,
        values: dict[str, Any],
        *,
        secrets: Iterable[str] = (),
        history_max: int = 10,
        take_ownership: bool = False,
        rollback_on_failure: bool = True,
        create_namespace: bool = True,
        server_side: bool = True,
        force_conflicts: bool = False,
        wait: str = "hookOnly",
        timeout_seconds: int = 300,
        description: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        args = [
            "upgrade", "--install", release, *chart.args(),
            "--namespace", namespace,
            "--values", "-",
            "--reset-values",
            f"--history-max={history_max}",
            f"--timeout={timeout_seconds}s",
            f"--server-side={'true' if server_side else 'false'}",
            f"--wait={wait}",
        ]  # fmt: skip
        if server_side:
            # The API server validates every object strictly under server-side apply (helm v4 sends
            # fieldValidation=Strict), so helm's own OpenAPI check (it downloads and parses the
            # cluster's OpenAPI documents in every process: ~3/4 of an upgrade's CPU) is redundant.
            args.append("--disable-openapi-validation")
        if rollback_on_failure:
            args.append("--rollback-on-failure")
        if take_ownership:
            args.append("--take-ownership")
        if force_conflicts:
            args.append("--force-conflicts")
        if create_namespace:
            args.append("--create-namespace")
        if description:
            args += ["--description", description]
        if labels:
            args += ["--labels", ",".join(f"{k}={v}" for k, v in sorted(labels.items()))]
        await self._run_chart(
            args, chart, stdin=json.dumps(values).encode(), secrets=secrets, timeout=timeout_seconds + 120
        )

    async def _run_chart(
        self,
        args: list[str],
        chart: ChartRef,
        *,
        stdin: bytes,
        secrets: Iterable[str],
        timeout: float,
        mask_output: bool = True,
    ) -> str:
        """`run` for a command naming `chart` (its `chart.args()` among `args`): helm fetches it
        itself, or, when the registry needs a login, Moorage fetches it with the login and helm gets
        the archive (helm never sees the credential)."""
        auth = self.registry_auth.get(chart.repository)
        if auth is None:
            try:
                return await self.run(
                    args, stdin=stdin, secrets=secrets, timeout=timeout, mask_output=mask_output
                )
            except HelmError as e:
                raise _refused(e, chart) from None
        secrets = [*secrets, *auth.secrets()]
        with tempfile.TemporaryDirectory(prefix="moorage-chart-") as tmp:  # 0700, removed at once
            archive = Path(tmp) / f"{chart.name}-{chart.version}.tgz"
            archive.write_bytes(await fetch_chart(chart, auth))
            position = args.index(chart.args()[0])
            args = [*args[:position], str(archive), *args[position + len(chart.args()) :]]
            return await self.run(
                args, stdin=stdin, secrets=secrets, timeout=timeout, mask_output=mask_output
            )

    async def template(
        self,
        release: str,
        namespace: str,
        chart: ChartRef,
        values: dict[str, Any],
        *,
        secrets: Iterable[str] = (),
        timeout_seconds: int = 300,
    ) -> str:
        """The chart's objects as an install would create them (hooks included; secrets masked)."""
        args = ["template", release, *chart.args(), "--namespace", namespace, "--values", "-"]
        return await self._run_chart(
            args, chart, stdin=json.dumps(values).encode(), secrets=secrets, timeout=timeout_seconds
        )

    async def render(
        self,
        release: str,
        namespace: str,
        chart: ChartRef,
        values: dict[str, Any],
        *,
        secrets: Iterable[str] = (),
        take_ownership: bool = False,
        timeout_seconds: int = 120,
    ) -> str:
        """The manifest (hooks left out) an `upgrade --install` of these values would give the
        release, rendered by `helm upgrade --install --dry-run=server`: the same command as a deploy,
        so the chart sees the cluster (`lookup`, `.Capabilities`, `.Release.IsUpgrade`) as it will;
        nothing is changed (docs/decisions.md). Not masked: the caller keeps it in memory."""
        args = [
            "upgrade", "--install", release, *chart.args(),
            "--namespace", namespace,
            "--values", "-",
            "--reset-values",
            "--dry-run=server",
            "--disable-openapi-validation",
            "--output", "json",
        ]  # fmt: skip
        if take_ownership:
            args.append("--take-ownership")
        out = await self._run_chart(
            args,
            chart,
            stdin=json.dumps(values).encode(),
            secrets=secrets,
            timeout=timeout_seconds,
            mask_output=False,
        )
        try:
            manifest = json.loads(out).get("manifest")
        except (ValueError, AttributeError):
            raise HelmError("helm upgrade --dry-run printed no release", temporary=False) from None
        return manifest if isinstance(manifest, str) else ""

    async def rollback(
        self, release: str, namespace: str, revision: int, *, timeout_seconds: int = 300
    ) -> None:
        await self.run(
            ["rollback", release, str(revision), "--namespace", namespace, f"--timeout={timeout_seconds}s"],
            timeout=timeout_seconds + 60,
        )

    async def uninstall(self, release: str, namespace: str, *, timeout_seconds: int = 300) -> None:
        await self.run(
            [
                "uninstall",
                release,
                "--namespace",
                namespace,
                "--ignore-not-found",
                f"--timeout={timeout_seconds}s",
            ],
            timeout=timeout_seconds + 60,
        )
