"""/api/v1/clusters/{name}/stacks: the Stack Builder. Read the stacks at the tracked branch's tip,
preview or save edits (each save is one commit on the branch, authored by the caller, validated
first), and copy a stack to another cluster's definition.

Values marked as secret arrive in the request and leave it only as SOPS ciphertext: they are never
logged, stored or answered (errors name keys, never values)."""

import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from moorage.server.api.deps import Ctx, Reader, Writer
from moorage.server.api.resources import read_through_agent
from moorage.server.stacks import edits as E
from moorage.server.stacks import render
from moorage.server.stacks import service as stacks
from moorage.spec.protocol import JobAction

router = APIRouter(prefix="/clusters/{name}/stacks", tags=["stacks"])

Name = Annotated[str, Field(min_length=1, max_length=253)]


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AddAddon(_Op):
    op: Literal["add_addon"]
    stack: Name
    addon: dict[str, Any] = Field(description="The add-on entry, as in the definition (name, chart_name …).")


class ChangeAddon(_Op):
    op: Literal["change_addon"]
    stack: Name
    name: Name
    fields: dict[str, Any] = Field(description="Fields to set; null removes one, a mapping is merged.")


class RemoveAddon(_Op):
    op: Literal["remove_addon"]
    stack: Name
    name: Name


class AddManifest(_Op):
    op: Literal["add_manifest"]
    stack: Name
    manifest: dict[str, Any]


class ChangeManifest(_Op):
    op: Literal["change_manifest"]
    stack: Name
    name: Name
    fields: dict[str, Any]


class RemoveManifest(_Op):
    op: Literal["remove_manifest"]
    stack: Name
    name: Name


class SetValues(_Op):
    op: Literal["set_values"]
    stack: Name
    addon: Name
    values: dict[str, Any] | Annotated[str, Field(max_length=1024 * 1024)] = Field(
        description="The add-on's values, whole (secret ones in plaintext): a mapping, or YAML text."
    )
    secret: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        default_factory=list, max_length=200, description="Keys to encrypt with SOPS (dotted paths)."
    )
    recipients: list[Annotated[str, Field(max_length=100)]] = Field(
        default_factory=list,
        max_length=20,
        description="age recipients; default: the .sops.yaml creation rule for the values file.",
    )


class SetChartVersion(_Op):
    op: Literal["set_chart_version"]
    stack: Name
    addon: Name
    version: Annotated[str, Field(min_length=1, max_length=128)]


class AddStack(_Op):
    op: Literal["add_stack"]
    stack: dict[str, Any]


class ChangeStack(_Op):
    op: Literal["change_stack"]
    name: Name
    fields: dict[str, Any] = Field(description="deploy_wave, description, variables …; null removes one.")


class RemoveStack(_Op):
    op: Literal["remove_stack"]
    name: Name


class SaveTemplate(_Op):
    op: Literal["save_template"]
    stack: Name
    path: Annotated[str, Field(min_length=1, max_length=512)] = Field(
        description="Repository-relative file for the template, e.g. stacks/web.yaml."
    )


class UseTemplate(_Op):
    op: Literal["use_template"]
    path: Annotated[str, Field(min_length=1, max_length=512)]
    variables: dict[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=128)], str] = Field(
        default_factory=dict, max_length=200, description="Set in the definition's spec.variables."
    )


class _Move(_Op):
    before: Name | None = Field(None, description="Move right before this entry (or give `after`).")
    after: Name | None = Field(None, description="Move right after this entry (or give `before`).")


class MoveAddon(_Move):
    op: Literal["move_addon"]
    stack: Name
    name: Name


class MoveManifest(_Move):
    op: Literal["move_manifest"]
    stack: Name
    name: Name


class MoveStack(_Move):
    op: Literal["move_stack"]
    name: Name


Op = Annotated[
    AddAddon
    | ChangeAddon
    | RemoveAddon
    | AddManifest
    | ChangeManifest
    | RemoveManifest
    | SetValues
    | SetChartVersion
    | AddStack
    | ChangeStack
    | RemoveStack
    | SaveTemplate
    | UseTemplate
    | MoveAddon
    | MoveManifest
    | MoveStack,
    Field(discriminator="op"),
]


class EditRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    edits: list[Op] = Field(min_length=1, max_length=50)
    preview: bool = Field(False, description="Answer the diff and the changes; commit nothing.")
    render_objects: bool = Field(
        True,
        description="With preview: the cluster's agent renders each created or changed release's chart "
        "with the new values and lists its objects created, changed (field paths) and removed.",
    )
    branch: Annotated[str, Field(min_length=1, max_length=255)] | None = Field(
        None,
        description="Commit to this new branch instead of the tracked one, for a pull request "
        "(nothing syncs until it is merged; with the connection's edit mode pull_request, this names the "
        "branch instead of a generated one); the pull request is opened through the provider's API where "
        "the connection's token credential allows it, else the answer links to the provider's form.",
    )


class CopyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to_cluster: Name
    preview: bool = False


class Saved(BaseModel):
    cluster_name: str
    commit: str | None = Field(description="The commit pushed (null for a preview).")
    parent: str
    files: list[str]
    diff: str
    message: str
    changes: dict[str, list[str]] = Field(description="Entries added / changed / removed vs the last sync.")
    warnings: list[dict[str, Any]]
    attempts: int = Field(description="2 when the branch moved and the edit was applied again on its tip.")
    branch: str = Field(description="The branch the commit went to (or would go to).")
    pull_request_url: str | None = Field(
        None, description="The pull request opened for `branch`, else where to open it by hand."
    )
    tracked_branch: str = Field(description="The branch that syncs; a commit on another waits for its merge.")
    pull_request_opened: bool = Field(
        False, description="The pull request was opened through the provider's API."
    )
    pull_request_reason: str | None = Field(
        None, description="Why the pull request was not opened (the commit is on `branch` all the same)."
    )
    cluster_changes: dict[str, Any] = Field(
        description="Helm releases and manifest objects created, changed or removed; in a preview each "
        "release's chart objects (`objects`: created, changed with field paths, removed; or `rendered: "
        "false` and the `reason`) and `render`: state, message, seconds."
    )
    also_affects: list[str] = Field(
        description="Other clusters of this repository and branch whose definitions read a changed file."
    )


class EntryOut(BaseModel):
    kind: str
    name: str
    file: str
    chart_name: str | None = None
    chart_version: str | None = None
    registry_name: str | None = None
    namespace: str | None = None
    parents: list[str] = Field(default_factory=list, description="kind:name of each parent")
    moves_in: str | None = Field(
        None,
        description="The file list that writes it: entries of the same list can be moved next to each other.",
    )


class StackOut(BaseModel):
    name: str
    file: str
    deploy_wave: int | None
    moves_in: str | None = Field(None, description="As for entries: stacks of one list can be reordered.")
    addons: list[EntryOut]
    manifests: list[EntryOut]


class StacksOut(BaseModel):
    cluster_name: str
    commit: str
    path: str
    stacks: list[StackOut]


def to_edit(op: Op) -> E.Edit:
    if isinstance(op, AddAddon):
        return E.AddEntry(op.stack, "addon", op.addon)
    if isinstance(op, ChangeAddon):
        return E.ChangeEntry(op.stack, "addon", op.name, op.fields)
    if isinstance(op, RemoveAddon):
        return E.RemoveEntry(op.stack, "addon", op.name)
    if isinstance(op, AddManifest):
        return E.AddEntry(op.stack, "manifest", op.manifest)
    if isinstance(op, ChangeManifest):
        return E.ChangeEntry(op.stack, "manifest", op.name, op.fields)
    if isinstance(op, RemoveManifest):
        return E.RemoveEntry(op.stack, "manifest", op.name)
    if isinstance(op, SetValues):
        values = _mapping(op.values) if isinstance(op.values, str) else op.values
        return E.SetValues(op.stack, op.addon, values, tuple(op.secret), tuple(op.recipients))
    if isinstance(op, SetChartVersion):
        return E.SetChartVersion(op.stack, op.addon, op.version)
    if isinstance(op, AddStack):
        return E.AddStack(op.stack)
    if isinstance(op, ChangeStack):
        return E.ChangeStack(op.name, op.fields)
    if isinstance(op, SaveTemplate):
        return E.SaveTemplate(op.stack, op.path)
    if isinstance(op, UseTemplate):
        return E.UseTemplate(op.path, op.variables)
    if isinstance(op, MoveAddon | MoveManifest):
        return E.MoveEntry(
            op.stack, "addon" if isinstance(op, MoveAddon) else "manifest", op.name, op.before, op.after
        )
    if isinstance(op, MoveStack):
        return E.MoveStack(op.name, op.before, op.after)
    return E.RemoveStack(op.name)


def _mapping(text: str) -> dict[str, Any]:
    """Values given as YAML text (the UI's editor); never echoed back, it may hold secrets."""
    import yaml

    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise HTTPException(422, detail=f"the values are not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise HTTPException(422, detail="the values must be a YAML mapping (key: value lines)")
    return data


def deps_of(ctx: Ctx) -> stacks.Deps:
    return stacks.Deps(
        db=ctx.db, git=ctx.gitops.deps.git, box=ctx.box, settings=ctx.settings, ask_agent=_asker(ctx)
    )


def _asker(ctx: Ctx) -> render.Ask:
    """A read job through the cluster's agent; its refusals (offline 503, slow 504, failed) as
    render.Unavailable, so a preview answers without the objects instead of failing."""

    async def ask(
        name: str, who: str, action: JobAction, payload: dict[str, Any], seconds: int
    ) -> dict[str, Any]:
        try:
            return await read_through_agent(ctx, name, who, action, payload, timeout_seconds=seconds)
        except HTTPException as e:
            state = {503: "offline", 504: "timeout"}.get(e.status_code, "failed")
            raise render.Unavailable(str(e.detail), state=state) from None

    return ask


def _refused(e: stacks.Refused) -> JSONResponse:
    body: dict[str, Any] = {"detail": e.message}
    if e.errors:
        body["errors"] = e.errors
    if e.warnings:
        body["warnings"] = e.warnings
    return JSONResponse(body, status_code=e.status)


async def _save(
    ctx: Ctx,
    name: str,
    edits: list[E.Edit],
    who: str,
    preview: bool,
    branch: str | None = None,
    render_objects: bool = True,
) -> JSONResponse:
    deps = deps_of(ctx)

    async def pushed(_sha: str) -> None:
        await stacks.request_sync(deps, name, who)
        ctx.gitops.wake()

    try:
        out = await stacks.save(
            deps,
            name,
            edits,
            who=who,
            preview=preview,
            on_pushed=pushed,
            to_branch=branch,
            render_objects=render_objects,
        )
    except stacks.Refused as e:
        return _refused(e)
    saved = Saved(cluster_name=name, **out.__dict__)
    return JSONResponse(saved.model_dump(mode="json"), status_code=200 if preview else 201)


@router.get("")
async def list_stacks(name: str, ctx: Ctx, _who: Reader) -> StacksOut:
    """The stacks of the definition at the tip of the tracked branch, with where each entry is defined."""
    deps = deps_of(ctx)
    try:
        src = await stacks.source_of(deps, name)
        tip = await stacks._fetch(deps, src)
        with tempfile.TemporaryDirectory(prefix="moorage-stack-") as tmp:
            await stacks._tree(deps, src, tip, Path(tmp))
            ws = E.Workspace(Path(tmp), src.path)
            found = [_stack_out(ws, slot) for slot in ws.stacks()]
    except stacks.Refused as e:
        raise HTTPException(e.status, detail=e.message) from None
    except E.EditError as e:
        raise HTTPException(422, detail=e.message) from None
    return StacksOut(cluster_name=name, commit=tip, path=src.path, stacks=found)


def _parents(value: Any) -> list[str]:
    out = []
    for item in value if isinstance(value, list) else []:
        if isinstance(item, dict) and "name" in item and "kind" in item:
            out.append(f"{item['kind']}:{item['name']}")
        elif isinstance(item, dict) and len(item) == 1:
            ((kind, name),) = item.items()
            out.append(f"{kind}:{name}")
    return out


def _stack_out(ws: E.Workspace, slot: E.Slot) -> StackOut:
    def entry(kind: str, s: E.Slot) -> EntryOut:
        node = s.node

        def text(key: str) -> str | None:
            value = node.get(key)
            return str(value) if isinstance(value, str) else None

        return EntryOut(
            kind=kind,
            name=str(node.get("name")),
            file=s.file,
            chart_name=text("chart_name"),
            chart_version=text("chart_version"),
            registry_name=text("registry_name"),
            namespace=text("namespace"),
            parents=_parents(node.get("parents")),
            moves_in=ws.list_of(s, slot, kind),
        )

    wave = slot.node.get("deploy_wave")
    return StackOut(
        name=str(slot.node.get("name")),
        file=slot.file,
        deploy_wave=wave if isinstance(wave, int) and not isinstance(wave, bool) else None,
        moves_in=ws.list_of(slot, None),
        addons=[entry("addon", s) for s in ws.entries(slot, "addon")],
        manifests=[entry("manifest", s) for s in ws.entries(slot, "manifest")],
    )


@router.post(
    "/edits",
    status_code=201,
    responses={
        200: {"model": Saved, "description": "a preview: nothing was committed"},
        409: {"description": "the edit changes nothing, or the branch kept moving"},
        422: {"description": "the edit is invalid or the edited definition does not validate (errors)"},
    },
)
async def edit_stacks(name: str, body: EditRequest, ctx: Ctx, who: Writer) -> JSONResponse:
    """Apply the edits to the definition at the branch tip, validate it as a sync would, and commit
    and push it (or, with `preview`, answer the diff only)."""
    edits = [to_edit(op) for op in body.edits]
    return await _save(ctx, name, edits, who.name, body.preview, body.branch, body.render_objects)


@router.post("/{stack}/copy", status_code=201, responses={200: {"model": Saved, "description": "a preview"}})
async def copy_stack(name: str, stack: str, body: CopyRequest, ctx: Ctx, who: Writer) -> JSONResponse:
    """Add stack `stack` of this cluster to the definition of cluster `to_cluster` (its entries
    inline, file paths rewritten for the target's definition file), committed there."""
    deps = deps_of(ctx)
    try:
        target = await stacks.source_of(deps, body.to_cluster)
        edit = await stacks.export(deps, name, stack, target.path)
    except stacks.Refused as e:
        return _refused(e)
    return await _save(ctx, body.to_cluster, [edit], who.name, body.preview)
