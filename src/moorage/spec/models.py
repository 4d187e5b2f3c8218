"""Typed models of the ImportCluster format (apiVersion v1), with the documented defaults.

Field names follow Ankra's reference. Where Argo CD has its own spelling of a setting
(``selfHeal``, ``syncOptions``, ``jsonPointers`` …) it is accepted as an alias. Models are strict:
YAML that would silently change type (``chart_version: 1.20``) is refused, not coerced.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

NAME_RE = re.compile(r"^[A-Za-z0-9-]+$")
DNS_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
VARIABLE_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
DURATION_RE = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")

DEFAULT_SYNC_OPTIONS: tuple[str, ...] = ("CreateNamespace=true", "ServerSideApply=true")

ResourceKind = Literal["manifest", "addon", "application"]
RESOURCE_KINDS: tuple[str, ...] = ("manifest", "addon", "application")


class SpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


def _alias(*names: str) -> Any:
    return AliasChoices(*names)


def _check_duration(value: str | None) -> str | None:
    if value is not None and not DURATION_RE.match(value):
        raise PydanticCustomError(
            "duration", "'{value}' is not a duration (use forms like 5s, 3m, 1h30m)", {"value": value}
        )
    return value


# --------------------------------------------------------------------------- metadata / spec parts


class Metadata(SpecModel):
    name: str = Field(description="Cluster name: letters, digits and '-' only.")
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise PydanticCustomError(
                "cluster_name",
                "cluster name '{value}' may contain only letters, digits and '-'",
                {"value": value},
            )
        return value


GitProvider = Literal["github", "bitbucket_cloud", "bitbucket_data_center"]


class GitRepository(SpecModel):
    provider: GitProvider = "github"
    credential_name: str
    repository: str | None = Field(None, description="owner/name (GitHub); optional for Bitbucket shapes")
    branch: str
    workspace: str | None = None
    repo_slug: str | None = None
    project_key: str | None = None
    instance_url: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_provider(cls, data: Any) -> Any:
        # The Ankra CLI treats an empty provider as github.
        if isinstance(data, dict) and data.get("provider") in ("", None) and "provider" in data:
            return {**data, "provider": "github"}
        return data

    @model_validator(mode="after")
    def _shape(self) -> GitRepository:
        if self.provider == "github":
            if self.repository is None:
                raise PydanticCustomError("missing_repository", "a github repository needs 'repository'")
            if (
                self.repository.count("/") != 1
                or self.repository.startswith("/")
                or self.repository.endswith("/")
            ):
                raise PydanticCustomError(
                    "repository_shape",
                    "repository '{value}' must look like owner/name",
                    {"value": self.repository},
                )
        elif self.provider == "bitbucket_cloud":
            if self.repository is None and not (self.workspace and self.repo_slug):
                raise PydanticCustomError(
                    "missing_repository",
                    "a bitbucket_cloud repository needs 'repository' or 'workspace' + 'repo_slug'",
                )
        elif self.repository is None and not (self.project_key and self.repo_slug):
            raise PydanticCustomError(
                "missing_repository",
                "a bitbucket_data_center repository needs 'repository' or 'project_key' + 'repo_slug'",
            )
        if self.provider == "bitbucket_data_center" and not self.instance_url:
            raise PydanticCustomError(
                "missing_instance_url", "a bitbucket_data_center repository needs 'instance_url'"
            )
        return self


def _check_endpoint(value: str) -> str:
    if not value or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise PydanticCustomError(
            "endpoint", "endpoint must not be empty or contain whitespace or control characters"
        )
    if "://" in value:
        if not value.startswith(("http://", "https://")):
            raise PydanticCustomError("endpoint", "endpoint must use http://, https:// or be host:port")
    elif not re.match(r"^[A-Za-z0-9.\-\[\]:]+:\d+(/.*)?$", value):
        raise PydanticCustomError("endpoint", "a scheme-less endpoint must be host:port")
    return value


class PrometheusMetrics(SpecModel):
    endpoint: str
    credential_name: str | None = None
    flavor: Literal["self_hosted", "grafana_cloud", "victoria_metrics"] | None = None
    verify_ssl: bool | None = Field(None, description="Omitted means the certificate is not verified.")

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return _check_endpoint(value)


class LogSource(SpecModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    provider: Literal["loki", "elasticsearch", "opensearch"]
    endpoint: str
    credential_name: str | None = None
    tenant_id: str | None = Field(None, description="Sent as X-Scope-OrgID.")
    index_pattern: str = "*"
    field_mappings: dict[str, Any] = Field(default_factory=dict)
    verify_ssl: bool | None = None

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return _check_endpoint(value)

    @field_validator("field_mappings")
    @classmethod
    def _mappings(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Only these keys mean something; others are ignored (not refused), as documented.
        return {
            k: v for k, v in value.items() if k in ("timestamp", "message", "namespace", "pod", "container")
        }


class HelmRegistry(SpecModel):
    name: str
    url: str
    credential_name: str | None = None
    exclude_charts: list[str] = Field(default_factory=list)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://", "oci://")):
            raise PydanticCustomError(
                "registry_url",
                "registry url '{value}' must start with https://, http:// or oci://",
                {"value": value},
            )
        return value


# --------------------------------------------------------------------------- parents


class Parent(SpecModel):
    """A dependency: ``{manifest: x}`` / ``{addon: x}`` / ``{application: x}`` or ``{name: x, kind: ...}``."""

    name: str
    kind: ResourceKind

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and "name" not in data and "kind" not in data and len(data) == 1:
            ((kind, name),) = data.items()
            if kind in RESOURCE_KINDS:
                return {"name": name, "kind": kind}
            raise PydanticCustomError(
                "parent_kind",
                "parent kind '{kind}' is not valid; use manifest, addon or application",
                {"kind": kind},
            )
        return data


# --------------------------------------------------------------------------- add-on settings (§5.1)


class SyncPolicy(SpecModel):
    automated: bool = True
    auto_prune: bool = Field(True, validation_alias=_alias("auto_prune", "prune", "autoPrune"))
    self_heal: bool = Field(True, validation_alias=_alias("self_heal", "selfHeal"))
    sync_options: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SYNC_OPTIONS),
        validation_alias=_alias("sync_options", "syncOptions"),
    )

    @model_validator(mode="before")
    @classmethod
    def _argo_automated(cls, data: Any) -> Any:
        # Argo CD writes `automated: {prune: true, selfHeal: true}`; fold it into the flat form.
        if isinstance(data, dict) and isinstance(data.get("automated"), dict):
            data = dict(data)
            automated = data.pop("automated")
            data["automated"] = True
            for src, dst in (("prune", "auto_prune"), ("selfHeal", "self_heal"), ("self_heal", "self_heal")):
                if src in automated:
                    data[dst] = automated[src]
        return data


class SyncWindow(SpecModel):
    enabled: bool = False
    schedule: str | None = Field(None, description="5-field cron: when the window opens.")
    duration: str | None = Field(None, description="How long the window stays open, e.g. 1h, 30m.")
    timezone: str = Field("UTC", validation_alias=_alias("timezone", "timeZone"))

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and (len(value.split()) != 5 or not re.match(r"^[0-9A-Za-z*,/\- ?]+$", value)):
            raise PydanticCustomError(
                "cron",
                "schedule '{value}' is not a 5-field cron expression (e.g. '0 22 * * *')",
                {"value": value},
            )
        return value

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        return _check_duration(value)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise PydanticCustomError(
                "timezone", "'{value}' is not an IANA time zone (e.g. UTC, Europe/Oslo)", {"value": value}
            ) from None
        return value

    @model_validator(mode="after")
    def _complete(self) -> SyncWindow:
        if self.enabled and (self.schedule is None or self.duration is None):
            raise PydanticCustomError(
                "sync_window", "an enabled sync_window needs both 'schedule' and 'duration'"
            )
        return self


class Backoff(SpecModel):
    duration: str = "5s"
    factor: float = Field(2, ge=1, le=10)
    max_duration: str = Field("3m", validation_alias=_alias("max_duration", "maxDuration"))

    @field_validator("duration", "max_duration")
    @classmethod
    def _durations(cls, value: str) -> str:
        _check_duration(value)
        return value


class RetryPolicy(SpecModel):
    limit: int = Field(5, ge=0, le=100)
    backoff: Backoff = Field(default_factory=lambda: Backoff.model_validate({}))

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data: Any) -> Any:
        # The reference page shows a flattened form; normalise it to the nested API form.
        flat = {"backoff_duration": "duration", "backoff_factor": "factor", "backoff_max": "max_duration"}
        if isinstance(data, dict) and any(k in data for k in flat):
            data = dict(data)
            backoff = dict(data.get("backoff") or {}) if isinstance(data.get("backoff"), dict) else {}
            for src, dst in flat.items():
                if src in data:
                    backoff[dst] = data.pop(src)
            data["backoff"] = backoff
        return data


class IgnoreDifference(SpecModel):
    group: str | None = None
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None
    json_pointers: list[str] = Field(
        default_factory=list, validation_alias=_alias("json_pointers", "jsonPointers")
    )
    jq_path_expressions: list[str] = Field(
        default_factory=list, validation_alias=_alias("jq_path_expressions", "jqPathExpressions")
    )
    managed_fields_managers: list[str] = Field(
        default_factory=list, validation_alias=_alias("managed_fields_managers", "managedFieldsManagers")
    )

    @field_validator("json_pointers")
    @classmethod
    def _pointers(cls, value: list[str]) -> list[str]:
        for pointer in value:
            if (pointer and not pointer.startswith("/")) or re.search(r"~(?![01])", pointer):
                raise PydanticCustomError(
                    "json_pointer",
                    "'{value}' is not a JSON pointer "
                    "(RFC 6901: starts with '/', '~1' escapes '/', '~0' escapes '~')",
                    {"value": pointer},
                )
        return value

    @property
    def has_specifier(self) -> bool:
        return bool(self.json_pointers or self.jq_path_expressions or self.managed_fields_managers)


Engine = Literal["ankra_native", "argo_cd"]


class AddonSettings(SpecModel):
    sync_policy: SyncPolicy = Field(
        default_factory=lambda: SyncPolicy.model_validate({}),
        validation_alias=_alias("sync_policy", "syncPolicy"),
    )
    sync_window: SyncWindow | None = Field(None, validation_alias=_alias("sync_window", "syncWindow"))
    ignore_differences: list[IgnoreDifference] = Field(
        default_factory=list, validation_alias=_alias("ignore_differences", "ignoreDifferences")
    )
    retry_policy: RetryPolicy = Field(
        default_factory=lambda: RetryPolicy.model_validate({}),
        validation_alias=_alias("retry_policy", "retry", "retryPolicy"),
    )
    revision_history_limit: int = Field(
        10, ge=1, le=100, validation_alias=_alias("revision_history_limit", "revisionHistoryLimit")
    )
    strict_health_check: bool = Field(
        False,
        validation_alias=_alias("strict_health_check", "strictHealthCheck"),
        description="Moorage name (undocumented upstream): succeed only when every resource is Healthy.",
    )
    engine: Engine | None = Field(
        None, description="Moorage name (undocumented upstream); None = cluster default."
    )
    take_ownership: bool = Field(
        False,
        validation_alias=_alias("take_ownership", "takeOwnership"),
        description="Moorage extension: the chart may take over objects another Helm release or a "
        "manifest entry owns (objects no one owns are always adopted, and reported).",
    )

    @property
    def effective_sync_options(self) -> list[str]:
        options = list(self.sync_policy.sync_options)
        if any(rule.has_specifier for rule in self.ignore_differences) and not any(
            o.startswith("RespectIgnoreDifferences=") for o in options
        ):
            options.append("RespectIgnoreDifferences=true")
        return options


class JobConfiguration(SpecModel):
    create_job_timeout: int = Field(420, gt=0)
    read_job_timeout: int = Field(30, gt=0)
    update_job_timeout: int = Field(420, gt=0)
    delete_job_timeout: int = Field(300, gt=0)


# --------------------------------------------------------------------------- resources

CONFIGURATION_KEYS: tuple[str, ...] = ("from_file", "values", "values_base64", "encrypted_paths")


class AddonConfiguration(BaseModel):
    """Values for an add-on. Unknown keys are handled by the loader (error if alone, warning otherwise)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    from_file: str | None = None
    values: str | dict[str, Any] | None = Field(
        None, description="Inline values: a YAML string (Ankra) or a mapping (Moorage convenience)."
    )
    values_base64: str | None = None
    encrypted_paths: list[str] = Field(default_factory=list)


class Manifest(SpecModel):
    name: str
    from_file: str | None = None
    manifest: str | None = None
    manifest_base64: str | None = None
    namespace: str | None = None
    parents: list[Parent] = Field(default_factory=list)
    encrypted_paths: list[str] = Field(default_factory=list)
    force: bool = False
    auto_remediate: bool = False
    group: str | None = Field(None, max_length=63)
    agents_md: str | None = None
    agents_md_from_file: str | None = None
    dependencies_override: list[Parent] | None = Field(
        None, description="Moorage meaning: when set, replaces `parents` for ordering."
    )

    @property
    def effective_parents(self) -> list[Parent]:
        return self.parents if self.dependencies_override is None else self.dependencies_override


NamespaceStrategy = Literal["move", "orphan"]


class Addon(SpecModel):
    name: str
    chart_name: str
    chart_version: str
    registry_name: str | None = None
    registry_url: str | None = None
    repository_url: str | None = Field(None, description="Legacy spelling of registry_url.")
    namespace: str
    registry_credential_name: str | None = None
    configuration_type: Literal["standalone", "profile"] | None = None
    configuration: AddonConfiguration | None = None
    parents: list[Parent] = Field(default_factory=list)
    settings: AddonSettings = Field(default_factory=lambda: AddonSettings.model_validate({}))
    namespace_migration_strategy: NamespaceStrategy | None = Field(
        None, description="Moorage values (undocumented upstream): move (default) or orphan."
    )
    job_configuration: JobConfiguration = Field(default_factory=lambda: JobConfiguration.model_validate({}))
    group: str | None = Field(None, max_length=63)
    agents_md: str | None = None
    agents_md_from_file: str | None = None
    dependencies_override: list[Parent] | None = None

    @property
    def effective_parents(self) -> list[Parent]:
        return self.parents if self.dependencies_override is None else self.dependencies_override


class Application(SpecModel):
    name: str
    platform_application_id: str | None = None
    platform_application_version: str | None = None
    namespace: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    parents: list[Parent] = Field(default_factory=list)
    group: str | None = Field(None, max_length=63)

    @property
    def effective_parents(self) -> list[Parent]:
        return self.parents


def _stringify_variables(value: Any) -> Any:
    # Ints and bools are stringified like the Ankra CLI does; floats and maps are refused later
    # because their text would change.
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(item, bool):
                out[key] = "true" if item else "false"
            elif isinstance(item, int):
                out[key] = str(item)
            else:
                out[key] = item
        return out
    return value


VariableName = Annotated[str, StringConstraints(pattern=VARIABLE_NAME_RE.pattern)]


class Stack(SpecModel):
    name: str
    description: str | None = None
    description_from_file: str | None = None
    deploy_wave: int | None = Field(None, ge=0)
    variables: dict[VariableName, str] = Field(default_factory=dict)
    manifests: list[Manifest] = Field(default_factory=list)
    addons: list[Addon] = Field(default_factory=list)
    applications: list[Application] = Field(default_factory=list)

    @field_validator("variables", mode="before")
    @classmethod
    def _vars_in(cls, value: Any) -> Any:
        return _stringify_variables(value)


MAX_HEALTH_SCRIPT = 65536  # characters of one Lua health script
MAX_HEALTH_EXPRESSION = 8192  # characters of one CEL expression
ARGOCD_HEALTH_PREFIX = "resource.customizations.health."
_GROUP_RE = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_KIND_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


class CelHealthCheck(SpecModel):
    """Flux's ``healthCheckExprs`` expressions: ``current`` (required), ``inProgress``, ``failed``."""

    current: str = Field(max_length=MAX_HEALTH_EXPRESSION)
    in_progress: str | None = Field(
        None, max_length=MAX_HEALTH_EXPRESSION, validation_alias=_alias("in_progress", "inProgress")
    )
    failed: str | None = Field(None, max_length=MAX_HEALTH_EXPRESSION)

    def expressions(self) -> list[tuple[str, str]]:
        """(field as written in Flux, expression) in Flux's order of evaluation."""
        found = [("inProgress", self.in_progress), ("failed", self.failed), ("current", self.current)]
        return [(name, expr) for name, expr in found if expr is not None]


def split_argocd_key(key: str) -> tuple[str, str]:
    """``cert-manager.io_Certificate`` (or the whole ``resource.customizations.health.…`` key, or
    Argo CD's older ``cert-manager.io/Certificate``) → (group, kind); a core kind has no group."""
    key = key.strip().removeprefix(ARGOCD_HEALTH_PREFIX)
    if "*" in key or "?" in key:
        raise PydanticCustomError(
            "health_check_key", "argocd_key '{value}': wildcards are not supported", {"value": key}
        )
    for sep in ("_", "/"):
        group, found, kind = key.rpartition(sep)
        if found:
            return group, kind
    return "", key


class HealthCheck(SpecModel):
    """A user-defined health check for one kind: an Argo CD-style Lua script or Flux-style CEL."""

    group: str | None = Field(None, description="API group; empty for the core group.")
    kind: str | None = None
    argocd_key: str | None = Field(
        None,
        validation_alias=_alias("argocd_key", "argocdKey"),
        description="Argo CD's key instead of group/kind, e.g. cert-manager.io_Certificate.",
    )
    api_version: str | None = Field(
        None,
        validation_alias=_alias("api_version", "apiVersion"),
        description="Flux's spelling instead of group (the version is not used).",
    )
    lua: str | None = Field(None, max_length=MAX_HEALTH_SCRIPT)
    cel: CelHealthCheck | None = None

    @model_validator(mode="after")
    def _shape(self) -> HealthCheck:
        if (self.lua is None) == (self.cel is None):
            raise PydanticCustomError(
                "health_check_shape", "a health check needs exactly one of 'lua' or 'cel'"
            )
        if self.argocd_key is not None:
            if self.group is not None or self.kind is not None or self.api_version is not None:
                raise PydanticCustomError("health_check_key", "set either argocd_key or group/kind, not both")
            self.group, self.kind = split_argocd_key(self.argocd_key)
        elif self.api_version is not None:
            if self.group is not None:
                raise PydanticCustomError("health_check_key", "set either api_version or group, not both")
            self.group = self.api_version.rpartition("/")[0]
        if not self.kind:
            raise PydanticCustomError(
                "health_check_key", "a health check needs 'kind' (or 'argocd_key', e.g. example.com_Widget)"
            )
        self.group = (self.group or "").strip()
        if self.group and not _GROUP_RE.match(self.group):
            raise PydanticCustomError(
                "health_check_key", "group '{value}' is not an API group", {"value": self.group}
            )
        if not _KIND_RE.match(self.kind):
            raise PydanticCustomError(
                "health_check_key", "kind '{value}' is not a Kubernetes kind", {"value": self.kind}
            )
        return self

    @property
    def group_kind(self) -> tuple[str, str]:
        return self.group or "", self.kind or ""

    @property
    def display(self) -> str:
        """``cert-manager.io/Certificate`` (``Service`` for the core group)."""
        group, kind = self.group_kind
        return f"{group}/{kind}" if group else kind


class Spec(SpecModel):
    git_repository: GitRepository | None = None
    prometheus_metrics: PrometheusMetrics | None = None
    log_source: LogSource | None = None
    helm_registries: list[HelmRegistry] = Field(default_factory=list)
    stacks: list[Stack]
    variables: dict[VariableName, str] = Field(
        default_factory=dict, description="Moorage extension: cluster-scope variables kept in Git."
    )
    deployment_engine: Engine | None = Field(None, description="Moorage name: the cluster default engine.")
    health_checks: list[HealthCheck] = Field(
        default_factory=list,
        validation_alias=_alias("health_checks", "healthChecks"),
        description="Moorage extension: user-defined health checks (Lua or CEL), per kind.",
    )

    @field_validator("variables", mode="before")
    @classmethod
    def _vars_in(cls, value: Any) -> Any:
        return _stringify_variables(value)


class ImportCluster(SpecModel):
    apiVersion: Literal["v1"]
    kind: Literal["ImportCluster"]
    metadata: Metadata
    spec: Spec


# Fields the platform adds on export; accepted and ignored (with a warning) so exports load unchanged.
WIRE_ONLY_FIELDS: dict[str, frozenset[str]] = {
    "stack": frozenset({"state", "delete_permanently", "draft_id", "jobs"}),
    "addon": frozenset(
        {
            "health",
            "state",
            "chart_icon",
            "delete_permanently",
            "position",
            "node_id",
            "draft",
            "job",
            "resource_id",
            "version_history",
        }
    ),
    "manifest": frozenset(
        {"state", "delete_permanently", "position", "node_id", "draft", "job", "resource_id"}
    ),
}
