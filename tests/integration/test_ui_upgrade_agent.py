"""Upgrade Agent and the roll-forward opt-out on the cluster settings page, in the real chromium
(tests/integration/ui_support.py) against a real server and agent. The agent is a process that
reports chart 0.1.0 (MOORAGE_AGENT_CHART_VERSION) without being a Helm release, so the upgrade it is
asked for runs and fails, and the page shows the agent's own reason; a successful upgrade end to end
is tests/integration/test_agent_upgrade.py (CLI) and test_fleet_rollout.py. A reader sees the
version but no button, and the toggle disabled."""

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from moorage.devcluster import DevCluster
from tests.integration.control_plane_support import Agents, Server, free_port, register, wait_state
from tests.integration.ui_support import DESKTOP, accessibility_problems, browser, sign_in

WRITER = ("wendy", "wendy-password-123")
READER = ("rita", "rita-password-123")
CHART = "oci://127.0.0.1:1/charts/moorage-agent"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    (tmp_path / "server").mkdir()
    srv = Server(f"http://127.0.0.1:{port}", tmp_path / "server", port)
    srv.start()
    for (username, password), role in ((WRITER, "write"), (READER, "read")):
        created = srv.api("POST", "/users", json={"username": username, "password": password, "role": role})
        assert created.status_code == 201, created.text
    yield srv
    srv.stop()


def test_upgrade_agent_and_the_opt_out_from_the_settings_page(
    server: Server, cluster: DevCluster, agents: Agents, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"ui-{uuid.uuid4().hex[:6]}"
    token = register(server, name)
    monkeypatch.setenv("MOORAGE_AGENT_CHART_VERSION", "0.1.0")
    agents.start(server, token, cluster.kubeconfig, "--heartbeat-interval", "1")
    wait_state(server, name, "online", timeout=90)
    settings = f"/clusters/{name}/settings"
    with browser() as b:
        page = b.new_page(viewport=DESKTOP)
        sign_in(page, server.url, *WRITER, next_path=settings)
        assert page.text_content('[data-field="chart-version"]') == "0.1.0"
        page.fill("#upgrade-version", "0.2.0")
        page.fill("#upgrade-chart", CHART)
        page.click("#upgrade-agent button[type=submit]")
        page.wait_for_function(
            "() => document.getElementById('upgrade-state').textContent.includes('failed')", timeout=120_000
        )
        assert page.is_visible("#upgrade-result")
        messages = page.text_content("#upgrade-messages") or ""
        assert "this agent does not know its Helm release" in messages, messages
        assert page.text_content('[data-field="chart-version"]') == "0.1.0"
        assert accessibility_problems(page) == []
        ops = server.api("GET", f"/clusters/{name}/operations").json()["result"]
        (op,) = [o for o in ops if o["kind"] == "upgrade_agent"]
        assert (op["state"], op["created_by"]) == ("failed", f"user:{WRITER[0]}")

        # a bad version is refused by the API, and the page says which field
        page.fill("#upgrade-version", "latest")
        page.click("#upgrade-agent button[type=submit]")
        page.wait_for_function(
            "() => document.getElementById('upgrade-state').textContent.includes('Upgrade Agent failed')"
        )
        assert "version" in (page.text_content("#upgrade-state") or "")

        assert page.is_checked("#roll-forward")
        page.uncheck("#roll-forward")
        deadline = time.monotonic() + 10
        while server.api("GET", f"/clusters/{name}").json()["agent_roll_forward"] is not False:
            assert time.monotonic() < deadline, "the toggle did not opt the cluster out"
            time.sleep(0.2)
        page.reload()
        assert not page.is_checked("#roll-forward")

        reader = b.new_page(viewport=DESKTOP)
        sign_in(reader, server.url, *READER, next_path=settings)
        assert reader.text_content('[data-field="chart-version"]') == "0.1.0"
        assert reader.locator("#upgrade-agent").count() == 0
        assert reader.is_disabled("#roll-forward")
