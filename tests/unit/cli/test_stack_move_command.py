"""`moorage stacks move` against the real server app (in-process) and a real Git server: an
add-on, a manifest or a stack moved before or after another, and the usage errors."""

from moorage.devcluster.gitserver import WorkTree
from tests.unit.cli.conftest import Cli, ok
from tests.unit.cli.test_stack_commands import origin, server_app
from tests.unit.server.stacks.test_stacks_api import PATH, chart_url

__all__ = ["chart_url", "origin", "server_app"]  # fixtures

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: strict\n"


def test_stacks_move_a_manifest_and_a_stack(cli: Cli, origin: WorkTree) -> None:
    ok(cli("cluster", "register", "c1"))
    ok(cli("cluster", "connect", "c1", "--url", origin.remote_url))
    ok(cli("stacks", "add-manifest", "c1", "base", "--name", "settings", "-f", "-", stdin=CONFIGMAP))
    ok(cli("stacks", "add", "c1", "-f", "-", stdin="name: extra\nmanifests: []\n"))

    preview = ok(
        cli("stacks", "move", "c1", "base", "--manifest", "settings", "--before", "ns-strict", "--preview")
    )
    moved = [ln for ln in preview.stdout.splitlines() if ln.startswith(("+ ", "- ", "+  ", "-  "))]
    assert moved
    assert sorted(ln[1:] for ln in moved if ln[0] == "+") == sorted(ln[1:] for ln in moved if ln[0] == "-")
    assert "nothing was committed" in preview.stdout
    saved = ok(cli("stacks", "move", "c1", "base", "--manifest", "settings", "--before", "ns-strict"))
    assert "move manifest settings before ns-strict in stack base" in saved.stdout
    ok(cli("stacks", "move", "c1", "extra", "--before", "base"))
    origin.git("pull", "--quiet")
    text = (origin.path / PATH).read_text()
    assert text.index("- name: extra") < text.index("- name: base")
    assert text.index("- name: settings") < text.index("- name: ns-strict")

    refused = cli("stacks", "move", "c1", "base", "--addon", "nope", "--after", "x")
    assert refused.exit_code == 1
    assert "stack 'base' has no add-on named 'nope'" in refused.output
    usage = cli("stacks", "move", "c1", "base", "--manifest", "settings")
    assert usage.exit_code == 2
    assert "give exactly one of --before NAME and --after NAME" in usage.output
