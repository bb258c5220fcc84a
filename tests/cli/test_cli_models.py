"""``headwater train`` and ``headwater models``: on the repo `headwater init` writes."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from headwater.cli.main import cli
from headwater.store import FeatureStore


def invoke(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_train_promote_show_list_diff_history(runner: CliRunner, repo: Path) -> None:
    invoke(runner, "apply", "--repo", str(repo))
    out = invoke(runner, "train", "driver_conversion", "--promote", "production",
                 "--repo", str(repo))
    assert "driver_conversion version 1" in out and "roc_auc" in out
    assert "driver_conversion@production: - -> 1 (promote)" in out
    assert "no current version: passed" in out

    out = invoke(runner, "train", "driver_conversion", "--repo", str(repo))
    assert "driver_conversion version 2" in out

    shown = json.loads(invoke(runner, "models", "show", "driver_conversion", "--json",
                              "--repo", str(repo)))
    assert shown["version"] == 1 and shown["aliases"] == ["production"]
    assert shown["features"] == ["conv_rate", "trips"]
    with FeatureStore(repo) as store:
        registered = store.registry.record("feature_view", "driver_stats").version
        assert shown["lineage"]["feature_views"] == {"driver_stats": registered}
        assert shown["artifact"]["sha256"] == store.get_model_version(
            "driver_conversion@production").artifact.sha256

    listed = invoke(runner, "models", "list", "--repo", str(repo))
    assert "driver_conversion" in listed and "production=1" in listed

    # same data and parameters: only the run-specific lineage differs, not the inputs
    diffed = invoke(runner, "models", "diff", "driver_conversion", "1", "2", "--repo", str(repo))
    assert "version 1 -> 2" in diffed and "Parameters: unchanged" in diffed
    assert "the same columns in the same order" in diffed
    assert "training_fingerprint" not in diffed  # same training frame

    out = invoke(runner, "models", "promote", "driver_conversion", "2", "--force",
                 "--repo", str(repo))
    assert "1 -> 2 (promote --force)" in out
    history = invoke(runner, "models", "history", "driver_conversion", "--repo", str(repo))
    assert "promote --force" in history and "production" in history


def test_unknown_model_and_version_fail_with_the_fix(runner: CliRunner, repo: Path) -> None:
    invoke(runner, "apply", "--repo", str(repo))
    result = runner.invoke(cli, ["train", "churn", "--repo", str(repo)])
    assert result.exit_code == 1
    assert "no model named 'churn'" in result.output and "driver_conversion" in result.output
    result = runner.invoke(cli, ["models", "show", "driver_conversion:7", "--repo", str(repo)])
    assert result.exit_code == 1 and "error:" in result.output
