"""headwater.yaml's ``server`` section: API keys (with ${ENV}), auth switch, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater.config import ServerSettings, load_settings
from headwater.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "headwater.yaml").write_text(text)
    return tmp_path


def test_no_server_section_means_auth_on_and_no_keys(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "project: p\n")).server == ServerSettings(True, ())


def test_keys_read_environment_variables_and_stay_out_of_repr(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HW_TEST_KEY", "s3cret-from-env")
    settings = load_settings(write(tmp_path, (
        "project: p\nserver: {api_keys: ['${HW_TEST_KEY}', ' literal-key ']}\n")))
    assert settings.server.api_keys == ("s3cret-from-env", "literal-key")
    assert settings.server.auth is True
    assert "s3cret" not in repr(settings) and "literal-key" not in repr(settings)


def test_auth_can_be_switched_off(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "project: p\nserver: {auth: false}\n"))
    assert settings.server.auth is False


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("server: [a]\n", "'server' must be a mapping"),
        ("server: {keys: [a]}\n", "server: unknown setting(s) ['keys']"),
        ("server: {auth: 'no'}\n", "server.auth must be true or false"),
        ("server: {api_keys: abc}\n", "server.api_keys must be a list"),
        ("server: {api_keys: [12345]}\n", "server.api_keys must be a list"),
        ("server: {api_keys: ['']}\n", "non-empty strings"),
        ("server: {api_keys: ['${HW_TEST_UNSET_KEY}']}\n", "HW_TEST_UNSET_KEY is not set"),
    ],
)
def test_bad_server_settings_are_clear_errors(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, f"project: p\n{text}"))
    assert words in str(err.value)
