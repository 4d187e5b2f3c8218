"""What a Stack Builder save costs on the server, piece by piece, on a copy of the example repository
and the devcluster's Git server (git http-backend on loopback):

    .venv/bin/python bench/stack_builder.py [--runs 20]

- `edit`: loading the definition's files with round-trip YAML, adding an add-on and a chart version
  change, and rendering the changed files (`Workspace.apply` + `changes`);
- `encrypt`: a values mapping with one secret key through sops (`encrypt_yaml`, one process);
- `validate`: the sync's own validation of the edited copy (`bundle.validate_tree`, no chart fetch);
- `commit_push`: fetch, a commit made in the bare cache (temporary index) and its push.

Prints one JSON object of medians in milliseconds."""

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from moorage.devcluster.gitserver import GitServer, WorkTree
from moorage.server.bundle import validate_tree
from moorage.server.gitops.git import Git
from moorage.server.stacks import edits, gitwrite
from moorage.spec.sopswrite import encrypt_yaml

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "gitops-repo"
RECIPIENT = "age1xc9s44auavrgsep532mql7v0hgz2mgsxmk5q627aa2raffyfk9es8yrkjl"
ADDON = {
    "name": "redis",
    "chart_name": "redis",
    "chart_version": "1.0.0",
    "registry_name": "local",
    "namespace": "c",
}


def _median_ms(work: Callable[[], object], runs: int) -> float:
    took = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        took.append(time.perf_counter() - started)
    return round(statistics.median(took) * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        repo = base / "repo"
        shutil.copytree(EXAMPLE, repo)

        def edit() -> dict[str, str | None]:
            ws = edits.Workspace(repo, "import-cluster.yaml")
            ws.apply(edits.AddEntry("platform", "addon", ADDON))
            ws.apply(edits.SetChartVersion("apps", "webapp", "1.1.0"))
            return ws.changes()

        def encrypt() -> str:
            return encrypt_yaml("replicas: 2\npassword: a-secret-value\n", [RECIPIENT], ["password"])

        def validate() -> object:
            ws = edits.Workspace(repo, "import-cluster.yaml")
            ws.apply(edits.AddEntry("platform", "addon", ADDON))
            ws.write_back()
            check = validate_tree(repo, "import-cluster.yaml")
            shutil.rmtree(repo)
            shutil.copytree(EXAMPLE, repo)
            return check

        results = {"edit": _median_ms(edit, runs), "encrypt": _median_ms(encrypt, runs)}
        results["validate"] = _median_ms(validate, runs)

        with GitServer(base / "git") as server:
            url = server.create_repo("org/bench.git")
            WorkTree(base / "work", url).commit_and_push({"a.yaml": "a: 0\n"}, "first")
            git = Git(base / "cache")
            counter = iter(range(1_000_000))

            async def save() -> None:
                tip = await git.fetch(url, "main", None)
                sha = await gitwrite.commit(
                    git, url, tip, {"a.yaml": f"a: {next(counter)}\n"}, author=gitwrite.author_of("bench"),
                    message="bench\n",
                )  # fmt: skip
                await gitwrite.push(git, url, "main", sha, None)

            results["commit_push"] = _median_ms(lambda: asyncio.run(save()), runs)
    print(json.dumps({"runs": runs, "median_ms": results}))


if __name__ == "__main__":
    main()
