"""`moorage cluster set NAME --no-roll-forward` and `moorage fleet status` against the real server
app in-process (tests/unit/cli/conftest.py)."""

from fastapi import FastAPI

from moorage.server.rollout import RollForward
from tests.unit.cli.conftest import Cli, as_json, ok


def test_opt_out_and_back(cli: Cli) -> None:
    ok(cli("cluster", "register", "c1"))
    assert (
        "c1 is opted out of the fleet roll-forward"
        in ok(cli("cluster", "set", "c1", "--no-roll-forward")).stdout
    )
    assert as_json(cli("cluster", "get", "c1", "-o", "json"))["agent_roll_forward"] is False
    assert "c1 takes part in" in ok(cli("cluster", "set", "c1", "--roll-forward")).stdout
    res = cli("cluster", "set", "c1")
    assert res.exit_code == 2
    assert "--no-roll-forward" in res.stderr


def test_status_off_and_stopped(cli: Cli, server_app: FastAPI) -> None:
    assert "fleet roll-forward is off: set MOORAGE_AGENT_CHART" in ok(cli("fleet", "status")).stdout
    ok(cli("cluster", "register", "c1"))
    ctx = server_app.state.moorage
    settings = ctx.settings.model_copy(update={"agent_chart": "oci://registry.example.com/moorage-agent"})
    loop = RollForward(settings, ctx.session_factory, ctx.bus, ctx.clock)
    loop.target, loop.checked_at = "0.2.0", ctx.clock()
    server_app.state.roll_forward = loop
    shown = ok(cli("fleet", "status")).stdout
    assert "target 0.2.0, up_to_date" in shown
    assert "c1" in shown
    assert "no_chart" in shown
    assert as_json(cli("fleet", "status", "-o", "json"))["clusters"][0]["status"] == "no_chart"
