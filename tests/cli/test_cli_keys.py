"""`headwater keys create|list|revoke`: a key is printed once, listed by id only, and
refused once revoked."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

import headwater as hw
from headwater.cli.main import cli
from headwater.serving.keys import KeyRing, registry_loader


def test_create_list_revoke(runner: CliRunner, repo: Path) -> None:
    made = runner.invoke(cli, ["keys", "create", "scoring service", "--scope", "predict",
                               "--scope", "read", "--repo", str(repo)])
    assert made.exit_code == 0, made.output
    key = made.output.strip().splitlines()[-1]
    assert key.startswith("hwk_") and "scope(s) read, predict" in made.output
    as_json = runner.invoke(cli, ["keys", "create", "pusher", "--scope", "push", "--json",
                                  "--repo", str(repo)])
    pusher = json.loads(as_json.output)
    assert pusher["scopes"] == ["push"] and pusher["key"].startswith(f"hwk_{pusher['id']}_")

    listed = runner.invoke(cli, ["keys", "list", "--repo", str(repo)])
    assert listed.exit_code == 0
    assert "scoring" in listed.output and pusher["id"] in listed.output
    assert key.rsplit("_", 1)[1] not in listed.output
    rows = [json.loads(line) for line in runner.invoke(
        cli, ["keys", "list", "--json", "--repo", str(repo)]).output.splitlines()]
    assert [(r["name"], r["scopes"], r["revoked_at"]) for r in rows] == [
        ("scoring service", ["read", "predict"], None), ("pusher", ["push"], None)]
    assert not any(key.rsplit("_", 1)[1] in json.dumps(r) for r in rows)
    with hw.FeatureStore(repo) as store:
        ring = KeyRing([], registry_loader(store), refresh_seconds=0)
        assert ring.check(key.encode(), "predict").label.startswith("key ")
        ident = ring.check(key.encode(), "read").ident

    revoked = runner.invoke(cli, ["keys", "revoke", ident, "--repo", str(repo)])
    assert revoked.exit_code == 0 and f"Revoked API key {ident}" in revoked.output
    def names(*flags: str) -> list[str]:
        out = runner.invoke(cli, ["keys", "list", "--json", *flags, "--repo", str(repo)])
        return [json.loads(line)["name"] for line in out.output.splitlines()]

    assert names() == ["pusher"]
    assert names("--all") == ["scoring service", "pusher"]
    with hw.FeatureStore(repo) as store:
        ring = KeyRing([], registry_loader(store), refresh_seconds=0)
        try:
            ring.check(key.encode(), "read")
        except hw.AuthError as exc:
            assert "not valid" in str(exc)
        else:
            raise AssertionError("a revoked key was accepted")


def test_bad_input_names_the_fix(runner: CliRunner, repo: Path) -> None:
    wrong_scope = runner.invoke(cli, ["keys", "create", "x", "--scope", "write",
                                      "--repo", str(repo)])
    assert wrong_scope.exit_code == 2 and "'write' is not one of" in wrong_scope.output
    no_scope = runner.invoke(cli, ["keys", "create", "x", "--repo", str(repo)])
    assert no_scope.exit_code == 2 and "--scope" in no_scope.output
    bad_name = runner.invoke(cli, ["keys", "create", "semi;colon", "--scope", "read",
                                   "--repo", str(repo)])
    assert bad_name.exit_code == 1 and "not a valid name" in bad_name.output
    unknown = runner.invoke(cli, ["keys", "revoke", "0123456789ab", "--repo", str(repo)])
    assert unknown.exit_code == 1 and "headwater keys list" in unknown.output
