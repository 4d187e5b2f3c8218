"""Reordering with the Stack Builder: a move cuts the entry's lines (with the comments written just
above it) out of the file that lists it and puts them back before or after another entry; every
other byte stays. Golden diffs on a copy of the example repository, and the refusals: entries of
different files, a folder's files (read in name order), a target that does not exist."""

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from moorage.server.stacks import edits as E
from moorage.server.stacks.yamlmove import MoveError, item_blocks, move_item
from moorage.spec.loader import LoadOptions, load
from tests.unit.server.conftest import EXAMPLE_REPO
from tests.unit.server.stacks.edit_helpers import ROOT, apply, diff


def resolved_order(repo: Path) -> tuple[list[str], list[str], list[str]]:
    """The stacks, manifests and add-ons in the order the loader reads them."""
    result = load(repo / ROOT, LoadOptions(decrypt=False), repo_root=repo)
    assert result.ok, [i.to_dict() for i in result.report.errors]
    assert result.resolved is not None
    assert result.cluster is not None
    return (
        [s.name for s in result.cluster.spec.stacks],
        list(result.resolved.manifests),
        list(result.resolved.addons),
    )


def plan_order(repo: Path) -> list[str]:
    result = load(repo / ROOT, LoadOptions(decrypt=False), repo_root=repo)
    assert result.plan is not None
    return [str(ref) for ref in result.plan.order]


def test_an_inline_addon_moves_before_another_with_its_comments(repo: Path) -> None:
    root = repo / ROOT
    root.write_text(
        root.read_text().replace(
            "        - name: hooked\n",
            "        # hooks run before the release\n        - name: hooked  # pre-install\n",
        )
    )
    before = root.read_text()
    ws, changes = apply(repo, E.MoveEntry("platform", "addon", "hooked", before="crd-widget"))
    assert list(changes) == [ROOT]
    assert diff(ws, ROOT, changes[ROOT]) == (  # hooked stays, crd-widget goes below it
        "@@ -26,13 +26,6 @@\n"
        "       manifests:\n"
        "         - include: manifests/platform.yaml\n"
        "       addons:\n"
        "-        - name: crd-widget\n"
        "-          chart_name: crd-widget\n"
        '-          chart_version: "1.0.0"\n'
        "-          registry_name: local\n"
        "-          namespace: widgets\n"
        "-          parents:\n"
        "-            - manifest: ns-widgets\n"
        "         # hooks run before the release\n"
        "         - name: hooked  # pre-install\n"
        "           chart_name: hooked\n"
        "@@ -45,6 +38,13 @@\n"
        "             retry_policy:\n"
        "               limit: 3\n"
        "               backoff: {duration: 5s, factor: 2, max_duration: 1m}\n"
        "+        - name: crd-widget\n"
        "+          chart_name: crd-widget\n"
        '+          chart_version: "1.0.0"\n'
        "+          registry_name: local\n"
        "+          namespace: widgets\n"
        "+          parents:\n"
        "+            - manifest: ns-widgets\n"
        "     - name: apps\n"
        "       description: Applications that run on the platform.\n"
        "       deploy_wave: 2\n"
    )
    assert sorted((changes[ROOT] or "").splitlines()) == sorted(before.splitlines())  # the same lines
    assert resolved_order(repo)[2][:2] == ["hooked", "crd-widget"]
    # same wave, same depth below their parents: the declaration order decides which starts first
    order = plan_order(repo)
    assert order.index("addon/hooked") < order.index("addon/crd-widget")


def test_moving_back_restores_the_file_byte_for_byte(repo: Path) -> None:
    _, changes = apply(
        repo,
        E.MoveEntry("platform", "addon", "crd-widget", after="hooked"),
        E.MoveEntry("platform", "addon", "crd-widget", before="hooked"),
    )
    assert changes == {}


def test_a_manifest_moves_within_its_included_list_file_and_the_file_header_stays_on_top(
    repo: Path,
) -> None:
    ws, changes = apply(repo, E.MoveEntry("platform", "manifest", "ns-widgets", after="ns-hooks"))
    assert list(changes) == ["manifests/platform.yaml"]
    assert diff(ws, "manifests/platform.yaml", changes["manifests/platform.yaml"]) == (
        "@@ -1,6 +1,4 @@\n"
        " # Namespaces for the platform stack (wave 1).\n"
        "-- name: ns-widgets\n"
        "-  from_file: ../k8s/ns-widgets.yaml\n"
        " - name: ns-hooks\n"
        "   manifest: |\n"
        "     apiVersion: v1\n"
        "@@ -9,3 +7,5 @@\n"
        "       name: hooks\n"
        "       labels:\n"
        "         environment: ${{ ankra.ENVIRONMENT }}\n"
        "+- name: ns-widgets\n"
        "+  from_file: ../k8s/ns-widgets.yaml\n"
    )
    assert resolved_order(repo)[1][:2] == ["ns-hooks", "ns-widgets"]


def test_stacks_move_and_a_stack_kept_in_a_file_of_its_own_moves_by_its_include(repo: Path) -> None:
    ws, changes = apply(repo, E.MoveStack("apps", before="platform"))
    text = changes[ROOT] or ""
    assert text.index("    - name: apps\n") < text.index("    - name: platform\n")
    assert sorted(text.splitlines()) == sorted((EXAMPLE_REPO / ROOT).read_text().splitlines())
    assert resolved_order(repo)[0] == ["apps", "platform"]

    apply(repo, E.SaveTemplate("platform", "stacks/platform.yaml"))
    ws, changes = apply(repo, E.MoveStack("platform", before="apps"))
    assert list(changes) == [ROOT]
    changed = [ln for ln in diff(ws, ROOT, changes[ROOT]).splitlines() if ln[:1] in "+-"]
    assert changed == ["+    - include: stacks/platform.yaml", "-    - include: stacks/platform.yaml"]
    assert resolved_order(repo)[0] == ["platform", "apps"]


def test_a_move_after_other_edits_of_the_same_file_keeps_them(repo: Path) -> None:
    _, changes = apply(
        repo,
        E.ChangeStack("platform", {"deploy_wave": 3}),
        E.AddEntry(
            "platform",
            "addon",
            {
                "name": "redis",
                "chart_name": "redis",
                "chart_version": "1.0.0",
                "registry_name": "local",
                "namespace": "cache",
            },
        ),
        E.MoveEntry("platform", "addon", "redis", before="crd-widget"),
        E.SetChartVersion("platform", "hooked", "1.1.0"),
    )
    text = changes[ROOT] or ""
    assert "      deploy_wave: 3\n" in text
    assert "      addons:\n        - name: redis\n" in text
    assert '          chart_version: "1.1.0"\n' in text
    assert resolved_order(repo)[2][:3] == ["redis", "crd-widget", "hooked"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            E.MoveEntry("apps", "addon", "webapp", before="stateful"),
            "cannot move add-on 'webapp': it is the file addons/webapp.yaml of the folder include addons, "
            "and the loader reads a folder's files in name order",
        ),
        (
            E.MoveEntry("platform", "addon", "hooked", before="nope"),
            "stack 'platform' has no add-on named 'nope'",
        ),
        (E.MoveEntry("nope", "addon", "hooked", before="x"), "stack 'nope' is not in the definition"),
        (E.MoveStack("apps", after="nope"), "stack 'nope' is not in the definition"),
        (
            E.MoveEntry("platform", "addon", "hooked", before="hooked"),
            "add-on 'hooked' cannot move next to itself",
        ),
        (E.MoveEntry("platform", "addon", "hooked"), "a move names exactly one of before and after"),
        (
            E.MoveStack("apps", before="platform", after="platform"),
            "a move names exactly one of before and after",
        ),
    ],
)
def test_a_move_that_cannot_apply_says_why(repo: Path, edit: E.Edit, message: str) -> None:
    with pytest.raises(E.EditError) as caught:
        apply(repo, edit)
    assert caught.value.message.startswith(message)


def test_entries_of_different_files_are_not_moved_next_to_each_other(repo: Path) -> None:
    root = repo / ROOT
    root.write_text(
        root.read_text().replace(
            "        - include: manifests/platform.yaml\n",
            "        - include: manifests/platform.yaml\n        - name: ns-extra\n          manifest: |\n"
            "            apiVersion: v1\n            kind: Namespace\n            metadata:\n"
            "              name: extra\n",
        )
    )
    with pytest.raises(E.EditError) as caught:
        apply(repo, E.MoveEntry("platform", "manifest", "ns-extra", before="ns-widgets"))
    assert caught.value.message == (
        "cannot move manifest 'ns-extra' next to manifest 'ns-widgets': manifest 'ns-extra' is written "
        "in import-cluster.yaml and manifest 'ns-widgets' in manifests/platform.yaml; an entry moves only "
        "within the list that holds it (move the include, or the entry, in Git)"
    )
    assert root.read_text().count("ns-extra") == 1  # nothing written


# ------------------------------------------------------------------------ the text edit itself


def seq_of(text: str, *path: str | int) -> object:
    node = YAML(typ="rt").load(text)
    for key in path:
        node = node[key]
    return node


def test_blank_lines_and_detached_comments_stay_where_they_are() -> None:
    text = (
        "items:\n"
        "  # about a\n"
        "  - name: a\n"
        "    x: 1\n"
        "    # a's last comment\n"
        "\n"
        "  # a remark on the list, set apart\n"
        "\n"
        "  - name: b\n"
        "  -\n"
        "    name: c\n"
        "other: 1\n"
    )
    seq = seq_of(text, "items")
    assert item_blocks(text.splitlines(keepends=True), seq) == [(1, 5), (8, 9), (9, 11)]  # type: ignore[arg-type]
    assert move_item(text, seq, 0, 2) == (  # type: ignore[arg-type]
        "items:\n"
        "  - name: b\n"
        "\n"
        "  # a remark on the list, set apart\n"
        "\n"
        "  -\n"
        "    name: c\n"
        "  # about a\n"
        "  - name: a\n"
        "    x: 1\n"
        "    # a's last comment\n"
        "other: 1\n"
    )


def test_a_last_item_without_a_final_newline_moves() -> None:
    text = "- a: 1\n- b: 2"
    assert move_item(text, seq_of(text), 1, 0) == "- b: 2\n- a: 1"  # type: ignore[arg-type]


def test_a_block_scalar_line_that_looks_like_a_comment_stays_in_its_item() -> None:
    text = "- name: a\n  text: |\n    # not a comment\n- name: b\n"
    assert move_item(text, seq_of(text), 0, 1) == "- name: b\n- name: a\n  text: |\n    # not a comment\n"  # type: ignore[arg-type]


def test_a_flow_list_is_refused() -> None:
    text = "items: [a, b]\n"
    with pytest.raises(MoveError, match="flow style"):
        move_item(text, seq_of(text, "items"), 0, 1)  # type: ignore[arg-type]


def test_an_anchor_moved_after_its_alias_is_refused(repo: Path) -> None:
    root = repo / ROOT
    root.write_text(
        root.read_text()
        .replace("          namespace: widgets\n", "          namespace: &ns widgets\n")
        .replace("          namespace: hooks\n", "          namespace: *ns\n")
    )
    with pytest.raises(E.EditError, match="cannot be reordered keeping the file's text"):
        apply(repo, E.MoveEntry("platform", "addon", "crd-widget", after="hooked"))
