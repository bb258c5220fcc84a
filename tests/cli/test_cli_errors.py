"""Error paths: a HeadwaterError is one red `error:` line on stderr and exit code 1."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from headwater.cli.main import cli


def assert_one_error_line(result: Result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_missing_config(runner: CliRunner, tmp_path: Path) -> None:
    for command in ("plan", "apply", "list"):
        result = runner.invoke(cli, [command, "--repo", str(tmp_path)])
        assert_one_error_line(result, "no headwater.yaml", "headwater init")


def test_init_refuses_an_existing_repo(runner: CliRunner, repo: Path) -> None:
    result = runner.invoke(cli, ["init", str(repo)])
    assert_one_error_line(result, "already holds headwater.yaml")


def test_syntax_error_in_a_definitions_file(runner: CliRunner, repo: Path) -> None:
    (repo / "more.py").write_text("import headwater as hw\n\nx = (\n")
    result = runner.invoke(cli, ["apply", "--repo", str(repo)])
    assert_one_error_line(result, "more.py", "syntax error")


def test_import_error_in_a_definitions_file(runner: CliRunner, repo: Path) -> None:
    (repo / "more.py").write_text("from features import nothing_like_this\n")
    result = runner.invoke(cli, ["plan", "--repo", str(repo)])
    assert_one_error_line(result, "more.py", "ImportError", "nothing_like_this")


def test_duplicate_names_across_files(runner: CliRunner, repo: Path) -> None:
    (repo / "other.py").write_text(
        'import headwater as hw\ndriver = hw.Entity("driver", join_keys=["driver_key"])\n')
    result = runner.invoke(cli, ["apply", "--repo", str(repo)])
    assert_one_error_line(result, "Entity 'driver'", "features.py", "other.py")


def test_bad_definition_at_construction(runner: CliRunner, repo: Path) -> None:
    (repo / "more.py").write_text(
        'import headwater as hw\nbad = hw.Entity("bad name", join_keys=["id"])\n')
    result = runner.invoke(cli, ["plan", "--repo", str(repo)])
    assert_one_error_line(result, "Entity", "field 'name'", "'bad name'", "more.py", "Fix:")


def test_bad_definition_against_its_data(runner: CliRunner, repo: Path) -> None:
    features = repo / "features.py"
    features.write_text(features.read_text().replace('hw.Field("conv_rate"',
                                                     'hw.Field("conv_rat"'))
    result = runner.invoke(cli, ["apply", "--repo", str(repo)])
    assert_one_error_line(result, "FeatureView 'driver_stats'", "schema[0]", "conv_rat",
                          "Fix:")
    # nothing was written
    listed = runner.invoke(cli, ["list", "--repo", str(repo)])
    assert "Feature views (0)" in listed.output


def test_wrong_dtype_names_the_field(runner: CliRunner, repo: Path) -> None:
    features = repo / "features.py"
    features.write_text(features.read_text().replace('hw.Field("trips", hw.Int64)',
                                                     'hw.Field("trips", hw.String)'))
    result = runner.invoke(cli, ["plan", "--repo", str(repo)])
    assert_one_error_line(result, "FeatureView 'driver_stats'", "schema[1]", "trips")


def test_missing_data_file(runner: CliRunner, repo: Path) -> None:
    (repo / "data/driver_stats.parquet").unlink()
    result = runner.invoke(cli, ["plan", "--repo", str(repo)])
    assert_one_error_line(result, "driver_stats.parquet")


def test_bad_yaml(runner: CliRunner, repo: Path) -> None:
    (repo / "headwater.yaml").write_text("project: [unclosed\n")
    result = runner.invoke(cli, ["list", "--repo", str(repo)])
    assert_one_error_line(result, "headwater.yaml", "not valid YAML")


def test_usage_errors_exit_2(runner: CliRunner) -> None:
    assert runner.invoke(cli, ["plan", "--no-such-option"]).exit_code == 2
    assert runner.invoke(cli, ["init"]).exit_code == 2
    assert runner.invoke(cli, ["no-such-command"]).exit_code == 2
    assert runner.invoke(cli, ["demo", "--rows", "3"]).exit_code == 2
