"""The Stack Builder from the command line: `moorage stacks …` edits a cluster's definition through
`moorage server` (each edit one commit on the tracked branch, validated first, `--preview` shows the
diff only), and `moorage values encrypt FILE --key PATH` encrypts values with SOPS locally.

Values are read from a file (or `-` for stdin), never from an argument: a secret value in an argument
would land in the shell's history and in the process list."""

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from moorage.cli.client import DEFAULT_TIMEOUT_SECONDS, ApiError, Remote, api_path, handled
from moorage.cli.output import Output, OutputOpt, dump, err, esc, format_issue, out
from moorage.cli.remote_commands import EXIT_FAILED, EXIT_USAGE, MAX_FILE_BYTES, ServerOpt, TokenOpt

stacks_app = typer.Typer(
    help="Edit a cluster's stacks in Git: add-ons, values, chart versions, manifests, stacks.",
    no_args_is_help=True,
)
values_app = typer.Typer(help="Work with values files (SOPS encryption).", no_args_is_help=True)

# a save fetches, validates (charts' schemas too), commits and pushes, maybe twice
SAVE_TIMEOUT_SECONDS = DEFAULT_TIMEOUT_SECONDS + 120

ClusterArg = Annotated[str, typer.Argument(help="The cluster's name.")]
StackArg = Annotated[str, typer.Argument(help="The stack's name.")]
AddonArg = Annotated[str, typer.Argument(help="The add-on's name.")]
PreviewOpt = Annotated[
    bool,
    typer.Option(
        "--preview",
        help="Show the diff that would be committed and what changes in the cluster (the objects of the "
        "charts, rendered by the agent); commit nothing.",
    ),
]
SecretOpt = Annotated[
    list[str] | None,
    typer.Option("--secret", metavar="KEY", help="A key of the values to encrypt with SOPS (repeatable)."),
]
RecipientOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--recipient",
        metavar="AGE",
        help="An age recipient for --secret (repeatable; default: the repository's .sops.yaml rule).",
    ),
]
BranchOpt = Annotated[
    str | None,
    typer.Option("--branch", metavar="NAME", help="Commit to this new branch (for a pull request) instead."),
]
ValuesOpt = Annotated[
    Path | None,
    typer.Option(
        "--values", "-f", metavar="FILE", help="A YAML file of values ('-': stdin).", show_default=False
    ),
]


def _usage(message: str) -> typer.Exit:
    err.print(f"error: {message}", style="red", markup=False)
    return typer.Exit(EXIT_USAGE)


def _read_text(path: Path) -> str:
    if str(path) == "-":
        return sys.stdin.read(MAX_FILE_BYTES + 1)[:MAX_FILE_BYTES]
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise _usage(f"{path} is larger than 1 MiB")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise _usage(f"{path} is not UTF-8 text") from None
    except OSError as e:
        raise _usage(f"cannot read {path}: {e.strerror or e}") from None


def _read_mapping(path: Path, what: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(_read_text(path))
    except yaml.YAMLError as e:
        raise _usage(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise _usage(f"{path} must hold a mapping ({what})")
    return data


def _send(
    remote: Remote,
    cluster: str,
    edits: list[dict[str, Any]],
    preview: bool,
    output: Output,
    branch: str | None = None,
) -> None:
    body: dict[str, Any] = {"edits": edits, **({"branch": branch} if branch else {})}
    _post(remote, api_path("clusters", cluster, "stacks", "edits"), body, preview, output)


def release_objects(release: dict[str, Any]) -> list[str]:
    """The lines of a preview for a release's chart objects: created, changed with their field paths,
    removed; or why they were not rendered."""
    if release.get("rendered") is False:
        return [f"objects not rendered: {release.get('reason') or 'unknown reason'}"]
    found = release.get("objects")
    if not isinstance(found, dict):
        return []
    lines = []
    for change in ("created", "changed", "removed"):
        for o in found.get(change) or []:
            where = f"{o['namespace']}/" if o.get("namespace") else ""
            paths = list(o.get("paths") or [])
            more = f" and {o['paths_omitted']} more" if o.get("paths_omitted") else ""
            fields = f": {', '.join(paths)}{more}" if paths else ""
            lines.append(f"{change} {o['kind']} {where}{o['name']}{fields}")
    if found.get("omitted"):
        lines.append(f"… and {found['omitted']} more objects")
    lines.append(f"({found.get('unchanged', 0)} unchanged)" if lines else "no object changes")
    if release.get("note"):
        lines.append(str(release["note"]))
    return lines


def _post(remote: Remote, path: str, body: dict[str, Any], preview: bool, output: Output) -> None:
    with handled(remote):
        try:
            _, data = remote.call(
                "POST", path, body={**body, "preview": preview}, timeout=SAVE_TIMEOUT_SECONDS
            )
        except ApiError as e:
            for item in (e.body or {}).get("errors") or []:
                err.print(format_issue(item, ""), markup=False)
            raise
    if output is not Output.table:
        dump(data, output)
        return
    if preview:
        out.print(data.get("diff") or "(no change)", markup=False, end="")
        changes = data.get("cluster_changes") or {}
        for r in changes.get("releases") or []:
            what = f" ({', '.join(r['what'])})" if r.get("what") else ""
            release = f"release {esc(r['release'])} {esc(r['chart'])} in {esc(r['namespace'])}"
            out.print(f"{release}: {r['change']}{esc(what)}")
            for line in release_objects(r):
                out.print(f"  {esc(line)}", soft_wrap=True)
        render = changes.get("render") or {}
        if render.get("state") in ("not_rendered", "partial"):
            out.print(f"[yellow]{esc(render.get('message') or '')}[/]", soft_wrap=True)
        for o in changes.get("objects") or []:
            where = f"{o['namespace']}/" if o.get("namespace") else ""
            out.print(f"{esc(o['kind'])} {esc(where)}{esc(o['name'])}: {o['change']}")
        if data.get("also_affects"):
            out.print(f"also changes the clusters: {esc(', '.join(data['also_affects']))}")
        out.print(f"[dim]preview only: nothing was committed ({len(data.get('files') or [])} file(s))[/]")
        return
    retried = " (applied again after another commit)" if data.get("attempts", 1) > 1 else ""
    out.print(
        f"committed {esc(str(data.get('commit'))[:12])} on {esc(data.get('cluster_name'))}'s branch"
        f"{retried}: "
        f"{esc(str(data.get('message')).splitlines()[0])}"
    )
    for name in data.get("files") or []:
        out.print(f"  {esc(name)}")
    if data.get("also_affects"):
        out.print(f"this also changes what these clusters deploy: {esc(', '.join(data['also_affects']))}")
    tracked = data.get("tracked_branch") or ""
    if data.get("pull_request_url") or (tracked and data.get("branch") != tracked):
        where = f"on the new branch {esc(data['branch'])}"
        link = esc(data.get("pull_request_url") or "on the provider's site")
        if data.get("pull_request_opened"):
            out.print(f"{where}; pull request opened: {link}")
        else:
            out.print(f"{where}; open its pull request: {link}")
            if data.get("pull_request_reason"):
                out.print(f"[dim]not opened by Moorage: {esc(data['pull_request_reason'])}[/]")
        out.print(f"nothing syncs until it is merged into {esc(tracked or 'the tracked branch')}")
        return
    out.print(f"follow the sync with `moorage cluster gitops {esc(data.get('cluster_name'))}`")


def _values_edit(
    stack: str, addon: str, values: Path | None, secret: list[str] | None, recipient: list[str] | None
) -> dict[str, Any]:
    if values is None:
        raise _usage("give the values with --values FILE (or - for stdin)")
    return {
        "op": "set_values",
        "stack": stack,
        "addon": addon,
        "values": _read_mapping(values, "the add-on's values"),
        "secret": secret or [],
        "recipients": recipient or [],
    }


@stacks_app.command("list")
def stacks_list(
    cluster: ClusterArg, server: ServerOpt = None, token: TokenOpt = None, output: OutputOpt = Output.table
) -> None:
    """The stacks at the tip of the cluster's branch, with their add-ons and manifests and their files."""
    remote = Remote.from_options(server, token)
    with handled(remote):
        data = remote.get(api_path("clusters", cluster, "stacks"))
    if output is not Output.table:
        dump(data, output)
        return
    out.print(f"{esc(data['path'])} at {esc(data['commit'][:12])}")
    for stack in data["stacks"]:
        wave = f" (wave {stack['deploy_wave']})" if stack.get("deploy_wave") is not None else ""
        out.print(f"[bold]{esc(stack['name'])}[/]{wave}  [dim]{esc(stack['file'])}[/]")
        for entry in [*stack["manifests"], *stack["addons"]]:
            chart = f" {entry['chart_name']} {entry['chart_version']}" if entry.get("chart_name") else ""
            out.print(f"  {entry['kind']:8} {esc(entry['name'])}{esc(chart)}  [dim]{esc(entry['file'])}[/]")


@stacks_app.command("add-addon")
def stacks_add_addon(
    cluster: ClusterArg,
    stack: StackArg,
    name: Annotated[str, typer.Option("--name", help="The add-on's name.")],
    chart: Annotated[str, typer.Option("--chart", help="The chart's name.")],
    version: Annotated[str, typer.Option("--version", help="The chart version.")],
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="Where it is installed.")],
    registry: Annotated[
        str | None, typer.Option("--registry", help="A helm_registries name of the definition.")
    ] = None,
    values: ValuesOpt = None,
    secret: SecretOpt = None,
    recipient: RecipientOpt = None,
    preview: PreviewOpt = False,
    branch: BranchOpt = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Add an add-on to a stack (where the stack's includes say), with its values."""
    addon: dict[str, Any] = {"name": name, "chart_name": chart, "chart_version": version}
    if registry:
        addon["registry_name"] = registry
    addon["namespace"] = namespace
    edits = [{"op": "add_addon", "stack": stack, "addon": addon}]
    if values is not None:
        edits.append(_values_edit(stack, name, values, secret, recipient))
    elif secret:
        raise _usage("--secret needs --values")
    _send(Remote.from_options(server, token), cluster, edits, preview, output, branch)


@stacks_app.command("set-values")
def stacks_set_values(
    cluster: ClusterArg,
    stack: StackArg,
    addon: AddonArg,
    values: ValuesOpt = None,
    secret: SecretOpt = None,
    recipient: RecipientOpt = None,
    preview: PreviewOpt = False,
    branch: BranchOpt = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Replace an add-on's values (keys given with --secret are encrypted with SOPS)."""
    edit = _values_edit(stack, addon, values, secret, recipient)
    _send(Remote.from_options(server, token), cluster, [edit], preview, output, branch)


@stacks_app.command("set-version")
def stacks_set_version(
    cluster: ClusterArg,
    stack: StackArg,
    addon: AddonArg,
    version: Annotated[str, typer.Argument(help="The new chart version.")],
    preview: PreviewOpt = False,
    branch: BranchOpt = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Change an add-on's chart version."""
    edit = {"op": "set_chart_version", "stack": stack, "addon": addon, "version": version}
    _send(Remote.from_options(server, token), cluster, [edit], preview, output, branch)


@stacks_app.command("remove-addon")
def stacks_remove_addon(
    cluster: ClusterArg,
    stack: StackArg,
    addon: AddonArg,
    preview: PreviewOpt = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Remove an add-on from a stack (the sync then prunes it, as for any commit)."""
    edit = {"op": "remove_addon", "stack": stack, "name": addon}
    _send(Remote.from_options(server, token), cluster, [edit], preview, output)


@stacks_app.command("add-manifest")
def stacks_add_manifest(
    cluster: ClusterArg,
    stack: StackArg,
    name: Annotated[str, typer.Option("--name", help="The manifest entry's name.")],
    file: Annotated[Path, typer.Option("--file", "-f", help="The Kubernetes YAML ('-': stdin).")],
    namespace: Annotated[str | None, typer.Option("--namespace", "-n")] = None,
    preview: PreviewOpt = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Add a manifest (the YAML inline in the entry) to a stack."""
    manifest: dict[str, Any] = {"name": name, "manifest": _read_text(file)}
    if namespace:
        manifest["namespace"] = namespace
    edit = {"op": "add_manifest", "stack": stack, "manifest": manifest}
    _send(Remote.from_options(server, token), cluster, [edit], preview, output)


@stacks_app.command("remove-manifest")
def stacks_remove_manifest(
    cluster: ClusterArg,
    stack: StackArg,
    name: Annotated[str, typer.Argument(help="The manifest entry's name.")],
    preview: PreviewOpt = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Remove a manifest entry from a stack."""
    edit = {"op": "remove_manifest", "stack": stack, "name": name}
    _send(Remote.from_options(server, token), cluster, [edit], preview, output)


@stacks_app.command("add")
def stacks_add(
    cluster: ClusterArg,
    file: Annotated[Path, typer.Option("--file", "-f", help="The stack as YAML ('-': stdin).")],
    preview: PreviewOpt = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Add a stack (name, add-ons, manifests …) to the cluster's definition."""
    edit = {"op": "add_stack", "stack": _read_mapping(file, "one stack")}
    _send(Remote.from_options(server, token), cluster, [edit], preview, output)


@stacks_app.command("remove")
def stacks_remove(
    cluster: ClusterArg,
    stack: StackArg,
    preview: PreviewOpt = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Remove a stack from the cluster's definition."""
    _send(
        Remote.from_options(server, token), cluster, [{"op": "remove_stack", "name": stack}], preview, output
    )


@stacks_app.command("move")
def stacks_move(
    cluster: ClusterArg,
    stack: StackArg,
    addon: Annotated[str | None, typer.Option("--addon", help="Move this add-on of the stack.")] = None,
    manifest: Annotated[str | None, typer.Option("--manifest", help="Move this manifest entry.")] = None,
    before: Annotated[str | None, typer.Option("--before", metavar="NAME", help="Right before it.")] = None,
    after: Annotated[str | None, typer.Option("--after", metavar="NAME", help="Right after it.")] = None,
    preview: PreviewOpt = False,
    branch: BranchOpt = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Reorder: move an add-on (--addon) or manifest (--manifest) of STACK, or else STACK itself,
    right before or after another of its kind, in the file that lists both. Within a deploy wave
    the order decides which entries start first when more are ready than run at once."""
    if (before is None) == (after is None):
        raise _usage("give exactly one of --before NAME and --after NAME")
    if addon is not None and manifest is not None:
        raise _usage("give --addon or --manifest, not both")
    where = {"before": before} if before is not None else {"after": after}
    if addon is not None:
        edit: dict[str, Any] = {"op": "move_addon", "stack": stack, "name": addon, **where}
    elif manifest is not None:
        edit = {"op": "move_manifest", "stack": stack, "name": manifest, **where}
    else:
        edit = {"op": "move_stack", "name": stack, **where}
    _send(Remote.from_options(server, token), cluster, [edit], preview, output, branch)


@stacks_app.command("copy")
def stacks_copy(
    cluster: ClusterArg,
    stack: StackArg,
    to: Annotated[str, typer.Option("--to", help="The cluster whose definition gets the stack.")],
    preview: PreviewOpt = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Copy a stack to another cluster's definition (committed there; file paths rewritten)."""
    path = api_path("clusters", cluster, "stacks", stack, "copy")
    _post(Remote.from_options(server, token), path, {"to_cluster": to}, preview, output)


@stacks_app.command("save-template")
def stacks_save_template(
    cluster: ClusterArg,
    stack: StackArg,
    path: Annotated[str, typer.Argument(help="Repository-relative file for it, e.g. stacks/web.yaml.")],
    preview: PreviewOpt = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Keep a stack in a file of its own (a template other clusters include), included from here."""
    edit = {"op": "save_template", "stack": stack, "path": path}
    _send(Remote.from_options(server, token), cluster, [edit], preview, output)


@stacks_app.command("use-template")
def stacks_use_template(
    cluster: ClusterArg,
    path: Annotated[str, typer.Argument(help="The template's repository-relative file.")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="NAME=VALUE", help="A variable for spec.variables (repeatable)."),
    ] = None,
    preview: PreviewOpt = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Include a stack template in the cluster's definition, with its variables filled in."""
    variables: dict[str, str] = {}
    for item in set_ or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise _usage(f"--set takes NAME=VALUE, not {item!r}")
        variables[name] = value
    edit = {"op": "use_template", "path": path, "variables": variables}
    _send(Remote.from_options(server, token), cluster, [edit], preview, output)


@values_app.command("encrypt")
def values_encrypt(
    file: Annotated[Path, typer.Argument(help="A YAML values file (plaintext).")],
    key: Annotated[
        list[str],
        typer.Option("--key", metavar="PATH", help="A key to encrypt, e.g. db.password (repeatable)."),
    ],
    recipient: RecipientOpt = None,
    in_place: Annotated[bool, typer.Option("--in-place", "-i", help="Write the result over FILE.")] = False,
) -> None:
    """Encrypt the values of --key with SOPS for the age recipients of the nearest .sops.yaml (or
    --recipient); other keys stay readable. Prints the result, or writes it with --in-place; add the
    keys to the add-on's configuration.encrypted_paths."""
    import yaml

    from moorage.spec.sopswrite import EncryptError, encrypt_yaml, rule_for, unmatched

    text = _read_text(file)
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise _usage(f"{file} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(tree, dict):
        raise _usage(f"{file} must hold a mapping of values")
    if isinstance(tree.get("sops"), dict):
        raise _usage(f"{file} is already encrypted with SOPS")
    missing = unmatched(tree, key)
    if missing:
        raise _usage(f"no key of {file} is named {', '.join(missing)}")
    recipients = list(recipient or [])
    try:
        if not recipients:
            recipients = _recipients_near(file.resolve(), rule_for)
        encrypted = encrypt_yaml(text, recipients, key)
    except EncryptError as e:
        err.print(f"error: {e.message}", style="red", markup=False)
        raise typer.Exit(EXIT_FAILED) from None
    if in_place:
        file.write_text(encrypted, encoding="utf-8")
        out.print(f"encrypted {', '.join(key)} in {esc(file)}; list them in the add-on's encrypted_paths")
    else:
        sys.stdout.write(encrypted)


def _recipients_near(file: Path, rule_for: Any) -> list[str]:
    """The age recipients of the first .sops.yaml from the file's folder upward whose rule matches."""
    for folder in file.parents:
        config = folder / ".sops.yaml"
        if config.is_file():
            rule = rule_for(config.read_text(encoding="utf-8"), file.relative_to(folder).as_posix())
            if rule is not None:
                return list(rule.recipients)
            break
    raise _usage(f"no .sops.yaml rule with age recipients applies to {file}; give --recipient AGE")


def register(app: typer.Typer) -> None:
    app.add_typer(stacks_app, name="stacks")
    app.add_typer(values_app, name="values")
