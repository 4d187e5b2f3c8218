"""Settings of `moorage server`: explicit fields with defaults, overridable from the environment."""

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from moorage.server.egress import EgressPolicy

DEFAULT_DATA_DIR = Path("~/.local/share/moorage/server")


def _default_data_dir() -> Path:
    return Path(os.environ.get("MOORAGE_SERVER_DATA") or DEFAULT_DATA_DIR).expanduser()


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Field(default_factory=_default_data_dir)
    # empty = a SQLite file in data_dir (filled in by the validator below)
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # None = `moorage server` starts an embedded nats-server
    nats_url: str | None = None
    # the NATS URL handed to agents at registration when it differs from nats_url (NAT, ingress)
    agent_nats_url: str | None = None
    public_url: str | None = None
    # HTTPS: the server's certificate (chain) and key, PEM files; without them it speaks plain HTTP
    # (loopback, or TLS terminated in front with public_url https://…)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # the CA (PEM file) of an external NATS at tls://…, trusted by the server and handed to agents
    nats_ca: Path | None = None
    # more host names / addresses (comma-separated) for the embedded NATS's certificate
    nats_tls_hosts: str = ""
    # creates an admin API token at first start if the database holds no token yet
    bootstrap_token: str | None = Field(default=None, repr=False)
    max_body_bytes: int = Field(default=2 * 1024 * 1024, gt=0)
    expire_interval_seconds: float = Field(default=15.0, gt=0)
    # the age key that seals stored secrets (Git credentials, webhook secrets); None = a key file
    # created in data_dir on first start
    secret_key: str | None = Field(default=None, repr=False)
    # GitOps: default poll interval per repository (webhooks make syncs immediate; polling is the
    # fallback), backoff of retried syncs, and whether file:// repository URLs are accepted
    git_poll_seconds: int = Field(default=180, ge=5, le=86_400)
    git_retry_base_seconds: float = Field(default=5.0, gt=0)
    git_retry_max_seconds: float = Field(default=300.0, gt=0)
    git_allow_file: bool = False
    git_timeout_seconds: float = Field(default=60.0, gt=0)
    # special address ranges (loopback, private, link-local …) the server may still connect to for
    # Git and chart hosts, as CIDRs or the words "loopback" / "private"; public addresses always
    egress_allow: str = ""
    # an OCI add-on on ghcr.io without its own credential uses the cluster's Git token (GitHub tokens
    # read GHCR packages too); MOORAGE_GHCR_GIT_TOKEN=0 turns it off
    ghcr_git_token: bool = True
    # the server-wide chart registries every cluster may use and the catalog searches (docs/charts.md)
    global_registries_file: Path | None = None
    # at most this many repositories are fetched and validated at once
    git_concurrency: int = Field(default=4, ge=1, le=64)
    # web UI sign-in: a session ends after this long without a request, and at the latest this long
    # after sign-in (the cookie's Max-Age); see docs/decisions.md for SameSite
    session_idle_seconds: int = Field(default=12 * 3600, ge=60)
    session_max_seconds: int = Field(default=7 * 86400, ge=60)
    session_cookie_samesite: Literal["lax", "strict"] = "lax"
    # failed sign-ins allowed per username and per client address within the window, then 429
    signin_failures_per_user: int = Field(default=10, ge=1)
    signin_failures_per_address: int = Field(default=30, ge=1)
    signin_window_seconds: int = Field(default=300, ge=1)
    # fleet roll-forward (server/rollout.py): the moorage-agent chart's source (oci://HOST/PATH/moorage-agent
    # or a Helm repository URL, read anonymously); None = off. Every poll, a newer version than an online
    # agent reports is rolled out, batch_size clusters at a time, pause seconds between batches; an agent
    # that has not reported the new version report seconds after its upgrade stops the roll-out
    agent_chart: str | None = Field(default=None, max_length=512, pattern=r"^(oci|https?)://[^\s@]+$")
    roll_forward_poll_seconds: float = Field(default=300.0, gt=0, le=86_400)
    roll_forward_batch_size: int = Field(default=5, ge=1, le=1000)
    roll_forward_pause_seconds: float = Field(default=60.0, ge=0, le=86_400)
    roll_forward_report_seconds: float = Field(default=300.0, gt=0, le=86_400)
    roll_forward_prereleases: bool = False

    @model_validator(mode="after")
    def _check_egress(self) -> "ServerSettings":
        EgressPolicy.parse(self.egress_allow)  # a bad range is an error at start-up, naming it
        return self

    def egress_policy(self) -> EgressPolicy:
        return EgressPolicy.parse(self.egress_allow)

    @model_validator(mode="after")
    def _check_tls(self) -> "ServerSettings":
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("HTTPS needs both --tls-cert and --tls-key (MOORAGE_TLS_CERT, MOORAGE_TLS_KEY)")
        for path in (self.tls_cert, self.tls_key, self.nats_ca):
            if path is not None and not path.is_file():
                raise ValueError(f"{path}: no such file")
        if self.public_url and not self.public_url.startswith(("https://", "http://")):
            raise ValueError("public_url must start with https:// (or http://)")
        return self

    @model_validator(mode="after")
    def _fill_database_url(self) -> "ServerSettings":
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'moorage.db'}"
        return self

    def base_url(self) -> str:
        """The server's URL in what it hands out (webhook URLs, the agent install command):
        `public_url` (https://… behind TLS termination), else `http(s)://<host>:<port>` from its own
        settings, https when it serves HTTPS itself (a wildcard host becomes the machine's host
        name). Never a request's Host header: the client chooses that, and a link built from it can
        point anywhere. Behind a proxy or NAT set MOORAGE_PUBLIC_URL."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.host
        if host in ("", "0.0.0.0", "::"):  # noqa: S104 (compared, not bound)
            host = socket.gethostname()
        elif ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.tls_cert else "http"
        return f"{scheme}://{host}:{self.port}"

    @classmethod
    def from_env(cls, **overrides: object) -> "ServerSettings":
        """Environment variables MOORAGE_DATABASE_URL, MOORAGE_NATS_URL, MOORAGE_AGENT_NATS_URL,
        MOORAGE_PUBLIC_URL, MOORAGE_TLS_CERT, MOORAGE_TLS_KEY, MOORAGE_NATS_CA,
        MOORAGE_NATS_TLS_HOSTS, MOORAGE_BOOTSTRAP_TOKEN, MOORAGE_SECRET_KEY, MOORAGE_GIT_POLL_SECONDS,
        MOORAGE_GIT_ALLOW_FILE, MOORAGE_EGRESS_ALLOW, MOORAGE_SESSION_IDLE_SECONDS,
        MOORAGE_SESSION_MAX_SECONDS, MOORAGE_SESSION_COOKIE_SAMESITE, MOORAGE_AGENT_CHART,
        MOORAGE_ROLL_FORWARD_POLL_SECONDS, _BATCH_SIZE, _PAUSE_SECONDS, _REPORT_SECONDS, _PRERELEASES;
        explicit overrides (CLI flags) win."""
        env = {
            "database_url": os.environ.get("MOORAGE_DATABASE_URL"),
            "nats_url": os.environ.get("MOORAGE_NATS_URL"),
            "agent_nats_url": os.environ.get("MOORAGE_AGENT_NATS_URL"),
            "public_url": os.environ.get("MOORAGE_PUBLIC_URL"),
            "tls_cert": os.environ.get("MOORAGE_TLS_CERT"),
            "tls_key": os.environ.get("MOORAGE_TLS_KEY"),
            "nats_ca": os.environ.get("MOORAGE_NATS_CA"),
            "nats_tls_hosts": os.environ.get("MOORAGE_NATS_TLS_HOSTS"),
            "bootstrap_token": os.environ.get("MOORAGE_BOOTSTRAP_TOKEN"),
            "secret_key": os.environ.get("MOORAGE_SECRET_KEY"),
            "git_poll_seconds": os.environ.get("MOORAGE_GIT_POLL_SECONDS"),
            "git_allow_file": os.environ.get("MOORAGE_GIT_ALLOW_FILE"),
            "egress_allow": os.environ.get("MOORAGE_EGRESS_ALLOW"),
            "ghcr_git_token": os.environ.get("MOORAGE_GHCR_GIT_TOKEN"),
            "global_registries_file": os.environ.get("MOORAGE_GLOBAL_REGISTRIES"),
            "git_retry_base_seconds": os.environ.get("MOORAGE_GIT_RETRY_BASE_SECONDS"),
            "git_retry_max_seconds": os.environ.get("MOORAGE_GIT_RETRY_MAX_SECONDS"),
            "expire_interval_seconds": os.environ.get("MOORAGE_EXPIRE_INTERVAL_SECONDS"),
            "session_idle_seconds": os.environ.get("MOORAGE_SESSION_IDLE_SECONDS"),
            "session_max_seconds": os.environ.get("MOORAGE_SESSION_MAX_SECONDS"),
            "session_cookie_samesite": os.environ.get("MOORAGE_SESSION_COOKIE_SAMESITE"),
            "agent_chart": os.environ.get("MOORAGE_AGENT_CHART"),
            "roll_forward_poll_seconds": os.environ.get("MOORAGE_ROLL_FORWARD_POLL_SECONDS"),
            "roll_forward_batch_size": os.environ.get("MOORAGE_ROLL_FORWARD_BATCH_SIZE"),
            "roll_forward_pause_seconds": os.environ.get("MOORAGE_ROLL_FORWARD_PAUSE_SECONDS"),
            "roll_forward_report_seconds": os.environ.get("MOORAGE_ROLL_FORWARD_REPORT_SECONDS"),
            "roll_forward_prereleases": os.environ.get("MOORAGE_ROLL_FORWARD_PRERELEASES"),
        }
        values: dict[str, object] = {k: v for k, v in env.items() if v}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)
