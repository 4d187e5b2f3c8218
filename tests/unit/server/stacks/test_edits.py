"""Stack Builder edits on a copy of the example repository: each edit changes only the file that
defines what it names, keeps comments, key order and quoting, puts new entries where the stack's
includes say, and the result still loads with Moorage's own loader. Golden diffs are written out."""

from pathlib import Path

import pytest

from moorage.server.stacks import edits as E
from moorage.server.stacks.yamlrt import RoundTrip
from moorage.spec.loader import LoadOptions, load
from moorage.spec.report import Location
from moorage.spec.sops import decrypt_yaml
from tests.unit.server.conftest import EXAMPLE_REPO
from tests.unit.server.stacks.edit_helpers import ROOT, apply, diff

KEY = EXAMPLE_REPO / "keys" / "test-only.agekey"
REDIS = {"name": "redis", "chart_name": "redis", "chart_version": "1.0.0", "registry_name": "local"}


def loads(repo: Path) -> None:
    result = load(repo / ROOT, LoadOptions(decrypt=False), repo_root=repo)
    assert result.ok, [i.to_dict() for i in result.report.errors]


def test_an_addon_added_to_an_inline_stack_changes_only_the_root_file_and_keeps_its_comments(
    repo: Path,
) -> None:
    ws, changes = apply(repo, E.AddEntry("platform", "addon", {**REDIS, "namespace": "cache"}))
    assert list(changes) == [ROOT]
    assert diff(ws, ROOT, changes[ROOT]) == (
        "@@ -44,6 +44,11 @@\n"
        "             retry_policy:\n"
        "               limit: 3\n"
        "               backoff: {duration: 5s, factor: 2, max_duration: 1m}\n"
        "+        - name: redis\n"
        "+          chart_name: redis\n"
        "+          chart_version: 1.0.0\n"
        "+          registry_name: local\n"
        "+          namespace: cache\n"
        "     - name: apps\n"
        "       description: Applications that run on the platform.\n"
        "       deploy_wave: 2\n"
    )
    text = changes[ROOT]
    assert text is not None
    assert text.startswith("# Example Moorage / Ankra ImportCluster definition.\n")
    loads(repo)


def test_an_addon_added_to_a_stack_that_includes_a_folder_gets_a_file_of_its_own(repo: Path) -> None:
    _ws, changes = apply(repo, E.AddEntry("apps", "addon", {**REDIS, "namespace": "apps"}))
    assert changes == {
        "addons/redis.yaml": (
            "name: redis\nchart_name: redis\nchart_version: 1.0.0\nregistry_name: local\nnamespace: apps\n"
        )
    }
    loads(repo)
    resolved = load(repo / ROOT, LoadOptions(decrypt=False)).resolved
    assert resolved is not None
    assert "redis" in resolved.addons


def test_a_manifest_goes_to_the_end_of_the_included_list_file_as_a_block(repo: Path) -> None:
    body = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: cache\n"
    ws, changes = apply(repo, E.AddEntry("platform", "manifest", {"name": "ns-cache", "manifest": body}))
    assert list(changes) == ["manifests/platform.yaml"]
    assert diff(ws, "manifests/platform.yaml", changes["manifests/platform.yaml"]).endswith(
        "+- name: ns-cache\n"
        "+  manifest: |\n"
        "+    apiVersion: v1\n"
        "+    kind: Namespace\n"
        "+    metadata:\n"
        "+      name: cache\n"
    )
    loads(repo)


def test_the_chart_version_changes_in_the_included_file_that_defines_the_addon_and_keeps_quotes(
    repo: Path,
) -> None:
    ws, changes = apply(repo, E.SetChartVersion("apps", "webapp", "1.1.0"))
    assert list(changes) == ["addons/webapp.yaml"]
    assert diff(ws, "addons/webapp.yaml", changes["addons/webapp.yaml"]) == (
        "@@ -1,7 +1,7 @@\n"
        " # A single add-on entry (a mapping) in its own file.\n"
        " name: webapp\n"
        " chart_name: webapp\n"
        '-chart_version: "1.0.0"\n'
        '+chart_version: "1.1.0"\n'
        " registry_name: local\n"
        " registry_url: http://127.0.0.1:8879\n"
        " namespace: apps\n"
    )


def test_a_change_in_a_file_with_mixed_indentation_touches_only_its_lines(repo: Path) -> None:
    ws, changes = apply(
        repo, E.ChangeEntry("apps", "addon", "stateful", {"settings": {"sync_policy": {"auto_prune": True}}})
    )
    assert diff(ws, "addons/stateful.yaml", changes["addons/stateful.yaml"]) == (
        "@@ -11,5 +11,5 @@\n"
        "     encrypted_paths: [password]\n"
        "   settings:\n"
        "     sync_policy:\n"
        "-      auto_prune: false\n"
        "+      auto_prune: true\n"
        "     strict_health_check: true\n"
    )


def test_removing_an_addon_in_a_file_of_its_own_deletes_the_file(repo: Path) -> None:
    _, changes = apply(
        repo, E.RemoveEntry("apps", "addon", "stateful"), E.ChangeEntry("apps", "addon", "webapp", {})
    )
    assert changes == {"addons/stateful.yaml": None}
    loads(repo)


def test_removing_an_inline_addon_removes_its_lines_only(repo: Path) -> None:
    ws, changes = apply(repo, E.RemoveEntry("platform", "addon", "crd-widget"))
    removed = [line for line in diff(ws, ROOT, changes[ROOT]).splitlines() if line.startswith("-")]
    assert removed == [
        "-        - name: crd-widget",
        "-          chart_name: crd-widget",
        '-          chart_version: "1.0.0"',
        "-          registry_name: local",
        "-          namespace: widgets",
        "-          parents:",
        "-            - manifest: ns-widgets",
    ]


def test_inline_values_are_merged_in_place_keeping_comments(repo: Path) -> None:
    root = repo / ROOT
    text = root.read_text().replace(
        "          namespace: hooks\n",
        "          namespace: hooks\n"
        "          configuration:\n"
        "            values:\n"
        "              # how many\n"
        "              replicas: 1\n"
        "              image: {tag: v1}\n",
    )
    root.write_text(text)
    ws, changes = apply(repo, E.SetValues("platform", "hooked", {"replicas": 3, "image": {"tag": "v1"}}))
    assert diff(ws, ROOT, changes[ROOT]) == (
        "@@ -41,7 +41,7 @@\n"
        "           configuration:\n"
        "             values:\n"
        "               # how many\n"
        "-              replicas: 1\n"
        "+              replicas: 3\n"
        "               image: {tag: v1}\n"
        "           parents:\n"
        "             - manifest: ns-hooks\n"
    )


def test_values_in_a_values_file_change_in_that_file(repo: Path) -> None:
    values = {"replicaCount": "${{ ankra.REPLICAS }}", "greeting": "hi", "service": {"port": 8080}}
    ws, changes = apply(repo, E.SetValues("apps", "webapp", values))
    assert list(changes) == ["values/webapp.yaml"]
    assert diff(ws, "values/webapp.yaml", changes["values/webapp.yaml"]) == (
        "@@ -1,5 +1,4 @@\n"
        " replicaCount: ${{ ankra.REPLICAS }}\n"
        "-greeting: ${{ ankra.GREETING }}\n"
        "-environment: ${{ ankra.ENVIRONMENT }}\n"
        "+greeting: hi\n"
        " service:\n"
        "   port: 8080\n"
    )


def test_a_secret_value_is_encrypted_for_the_sops_yaml_recipient_and_listed(repo: Path) -> None:
    plaintext = "s3cret-Plaintext-4711"
    ws, changes = apply(
        repo, E.SetValues("platform", "hooked", {"user": "app", "password": plaintext}, secret=("password",))
    )
    assert sorted(changes) == [ROOT, "values/hooked.enc.yaml"]
    assert all(plaintext not in (text or "") for text in changes.values())
    encrypted = changes["values/hooked.enc.yaml"]
    assert encrypted is not None
    assert "user: app\n" in encrypted  # keys and plain values stay readable
    assert "password: ENC[AES256_GCM," in encrypted
    assert diff(ws, ROOT, changes[ROOT]).count("\n+") == 4
    assert "+          configuration:\n+            from_file: values/hooked.enc.yaml\n" in diff(
        ws, ROOT, changes[ROOT]
    )
    back = decrypt_yaml(encrypted, Location("x"), env={"SOPS_AGE_KEY_FILE": str(KEY), "PATH": "/usr/bin"})
    assert f"password: {plaintext}" in back
    loads(repo)


def test_an_encrypted_values_file_is_encrypted_again_as_a_whole(repo: Path) -> None:
    _, changes = apply(
        repo,
        E.SetValues(
            "apps", "stateful", {"storage": {"size": "2Gi"}, "username": "app", "password": "new-pw-99"}
        ),
    )
    assert list(changes) == ["values/stateful.enc.yaml"]  # encrypted_paths already says password
    text = changes["values/stateful.enc.yaml"]
    assert text is not None
    assert "size: 2Gi" in text
    assert "new-pw-99" not in text


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            E.AddEntry("nope", "addon", REDIS),
            "stack 'nope' is not in the definition (its stacks: platform, apps)",
        ),
        (
            E.AddEntry("apps", "addon", {**REDIS, "name": "webapp"}),
            "stack 'apps' already has add-on 'webapp'",
        ),
        (E.RemoveEntry("apps", "addon", "nope"), "stack 'apps' has no add-on named 'nope'"),
        (E.AddStack({"name": "apps"}), "the definition already has a stack named 'apps'"),
        (E.AddEntry("apps", "addon", {"chart_name": "x"}), "the new add-on needs a name"),
        (
            E.SetValues("apps", "stateful", {"password": "ENC[AES256_GCM,data:x,type:str]"}),
            "the values hold SOPS ciphertext (ENC[…]) at password",
        ),
        (
            E.SetValues("apps", "stateful", {"username": "app"}),
            "the values marked as secret name no key of the values: password (the values file is "
            "encrypted: give every secret value again)",
        ),
        (E.ChangeEntry("apps", "addon", "webapp", {"name": "other"}), "an entry's name cannot be changed"),
        (
            E.AddEntry("apps", "addon", {**REDIS, "name": "../../escape"}),
            "cannot make the file 'addons/../../escape.yaml'",
        ),
    ],
)
def test_an_edit_that_cannot_apply_says_why(repo: Path, edit: E.Edit, message: str) -> None:
    with pytest.raises(E.EditError) as caught:
        apply(repo, edit)
    assert caught.value.message.startswith(message)


def test_a_secret_without_any_recipient_is_refused_naming_the_fix(repo: Path) -> None:
    (repo / ".sops.yaml").unlink()
    with pytest.raises(
        E.EditError, match=r"no age recipient for values/hooked.enc.yaml: add a creation rule"
    ):
        apply(repo, E.SetValues("platform", "hooked", {"password": "x-y-z-1"}, secret=("password",)))


def test_stacks_are_added_and_removed(repo: Path) -> None:
    _, changes = apply(repo, E.AddStack({"name": "extra", "addons": [{**REDIS, "namespace": "x"}]}))
    assert "    - name: extra\n      addons:\n        - name: redis\n" in (changes[ROOT] or "")
    loads(repo)
    _, changes = apply(repo, E.RemoveStack("extra"))
    assert changes[ROOT] == (EXAMPLE_REPO / ROOT).read_text()


def test_a_copied_stack_keeps_its_files_reachable_from_another_definition(repo: Path) -> None:
    other = repo / "clusters" / "second" / "cluster.yaml"
    other.parent.mkdir(parents=True)
    other.write_text(
        "apiVersion: v1\nkind: ImportCluster\nmetadata:\n  name: second\nspec:\n"
        "  helm_registries:\n    - name: local\n      url: http://127.0.0.1:8879\n"
        "  variables:\n    ENVIRONMENT: second\n  stacks: []\n"
    )
    data = E.export_stack(E.Workspace(repo, ROOT), "apps", "clusters/second/cluster.yaml")
    assert data["addons"][1]["configuration"]["from_file"] == "../../values/webapp.yaml"
    ws = E.Workspace(repo, "clusters/second/cluster.yaml")
    ws.apply(E.AddStack(data))
    ws.write_back()
    result = load(other, LoadOptions(decrypt=False), repo_root=repo)
    assert result.ok, [i.to_dict() for i in result.report.errors]
    assert sorted(result.resolved.addons) == ["stateful", "webapp"]  # type: ignore[union-attr]


@pytest.mark.parametrize("path", sorted(p.name for p in EXAMPLE_REPO.rglob("*.yaml")))
def test_an_unedited_file_is_written_back_unchanged(path: str) -> None:
    file = next(EXAMPLE_REPO.rglob(path))
    text = file.read_text()
    assert RoundTrip.load(path, text).text() == text


def test_a_stack_saved_as_a_template_is_included_from_its_file_and_used_by_another_definition(
    repo: Path,
) -> None:
    ws, changes = apply(repo, E.SaveTemplate("platform", "stacks/platform.yaml"))
    assert sorted(changes) == [ROOT, "stacks/platform.yaml"]
    removed = [ln for ln in diff(ws, ROOT, changes[ROOT]).splitlines() if ln.startswith("+")]
    assert removed == ["+    - include: stacks/platform.yaml"]
    template = changes["stacks/platform.yaml"] or ""
    assert "description_from_file: ../docs/platform.md\n" in template
    assert "  - include: ../manifests/platform.yaml\n" in template
    loads(repo)

    other = repo / "clusters" / "second" / "cluster.yaml"
    other.parent.mkdir(parents=True)
    other.write_text(
        "apiVersion: v1\nkind: ImportCluster\nmetadata:\n  name: second\nspec:\n"
        "  helm_registries:\n    - name: local\n      url: http://127.0.0.1:8879\n  stacks: []\n"
    )
    ws = E.Workspace(repo, "clusters/second/cluster.yaml")
    ws.apply(E.UseTemplate("stacks/platform.yaml", {"ENVIRONMENT": "second"}))
    changes = ws.changes()
    assert list(changes) == ["clusters/second/cluster.yaml"]
    assert "  stacks:\n    - include: ../../stacks/platform.yaml\n" in (
        changes["clusters/second/cluster.yaml"] or ""
    )
    assert "  variables:\n    ENVIRONMENT: second\n" in (changes["clusters/second/cluster.yaml"] or "")
    ws.write_back()
    result = load(other, LoadOptions(decrypt=False), repo_root=repo)
    assert result.ok, [i.to_dict() for i in result.report.errors]
    assert sorted(result.resolved.addons) == ["crd-widget", "hooked"]  # type: ignore[union-attr]
    with pytest.raises(E.EditError, match="already has a stack named 'platform'"):
        ws.apply(E.UseTemplate("stacks/platform.yaml"))
    with pytest.raises(E.EditError, match=r"must be a repository-relative \.yaml file"):
        ws.apply(E.UseTemplate("../outside.yaml"))


def test_a_stacks_deploy_wave_and_an_entrys_parents_change_in_place(repo: Path) -> None:
    ws, changes = apply(
        repo,
        E.ChangeStack("apps", {"deploy_wave": 3}),
        E.ChangeEntry(
            "platform", "addon", "hooked", {"parents": [{"manifest": "ns-hooks"}, {"addon": "crd-widget"}]}
        ),
    )
    changed = [
        ln for ln in diff(ws, ROOT, changes[ROOT]).splitlines() if ln[:1] in "+-" and ln[:3] not in "+++---"
    ]
    assert changed == ["+            - addon: crd-widget", "-      deploy_wave: 2", "+      deploy_wave: 3"]
    loads(repo)
    with pytest.raises(E.EditError, match="name of a stack cannot be set this way"):
        apply(repo, E.ChangeStack("apps", {"name": "other"}))


def test_a_secret_values_file_is_never_made_outside_the_repository(repo: Path) -> None:
    root = repo / ROOT
    root.write_text(root.read_text().replace("name: hooked", "name: ../../../../tmp/evil"))
    with pytest.raises(E.EditError, match="cannot make the values file"):
        apply(
            repo,
            E.SetValues("platform", "../../../../tmp/evil", {"password": "p-1-2-3"}, secret=("password",)),
        )
    assert not list(repo.parent.rglob("evil.enc.yaml"))
