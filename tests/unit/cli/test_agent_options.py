"""`moorage agent` options: bad values stop it at once with the setting's name, and the seed's extra_env
names are read as the options they mean."""

import pytest
import typer
from typer.testing import CliRunner

from moorage.cli.main import app as main_app


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--leader-election", "sometimes"], "--leader-election 'sometimes': use auto, on or off"),
        (["--public-ip-lookup-url", "ftp://ip.example"], "public_ip.lookup_url"),
        (["--write-workers", "0"], "--write-workers"),
        (["--concurrency", "51"], "--concurrency"),
        (["--nats-max-workers", "0"], "--nats-max-workers"),
    ],
)
def test_a_bad_setting_is_refused_naming_it(args: list[str], message: str) -> None:
    result = CliRunner().invoke(
        main_app, ["agent", "--server", "https://moorage.example.com", "--token", "t", *args]
    )
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_the_seed_extra_env_names_are_read() -> None:
    command = typer.main.get_command(main_app)
    agent = command.commands["agent"]  # type: ignore[attr-defined]
    envvars = {p.name: p.envvar for p in agent.params}
    assert "KUBERNETES_REQUEST_MAX_ATTEMPTS" in envvars["kube_request_max_attempts"]
    assert "RECONCILE_AUTO_HEAL_ENABLED" in envvars["recover_stuck"]
    assert "KUBE_PROXY_UNARY_CONCURRENCY" in envvars["kube_proxy_unary"]
    assert "KUBE_PROXY_STREAM_CONCURRENCY" in envvars["kube_proxy_stream"]
    assert envvars["nats_max_workers"] == "MOORAGE_AGENT_NATS_MAX_WORKERS"
    assert envvars["concurrency"] == "MOORAGE_AGENT_CONCURRENCY"
    assert envvars["public_ip_reporting"] == "MOORAGE_AGENT_PUBLIC_IP_REPORTING"
    assert envvars["public_ip_lookup_url"] == "MOORAGE_AGENT_PUBLIC_IP_LOOKUP_URL"
