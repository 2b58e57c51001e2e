"""Settings precedence (explicit > env > file > default) and validation errors that name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelfn.config import ENV_NAMES, Settings
from modelfn.errors import ConfigError


def test_defaults_are_the_embedded_store_on_loopback() -> None:
    settings = Settings.load(environ={})
    assert settings.store_url == "./.modelfn/store"
    assert settings.host == "127.0.0.1"
    assert settings.model_version == "latest"


def test_explicit_beats_env_beats_file(tmp_path: Path) -> None:
    # GIVEN a settings file, an environment and an explicit value for overlapping settings
    file = tmp_path / "modelfn.toml"
    file.write_text('[modelfn]\nport = 7000\nthreads = 3\nmodel_name = "from-file"\n')
    env = {"MODELFN_CONFIG": str(file), "MODELFN_PORT": "7100", "MODELFN_MODEL_NAME": "from-env"}
    # WHEN settings are loaded with an explicit port
    settings = Settings.load(environ=env, port=7200)
    # THEN each setting comes from the highest-precedence source that has it
    assert (settings.port, settings.model_name, settings.threads) == (7200, "from-env", 3)


def test_json_settings_file_and_list_values(tmp_path: Path) -> None:
    file = tmp_path / "s.json"
    file.write_text('{"trusted_keys": ["a.pem", "b.pem"], "allow_custom_code": true}')
    settings = Settings.load(environ={}, config_file=str(file))
    assert settings.trusted_keys == ("a.pem", "b.pem")
    assert settings.allow_custom_code is True


def test_env_list_and_inline_pem() -> None:
    pem = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
    assert Settings.load(environ={"MODELFN_TRUSTED_KEYS": "x.pem, y.pem"}).trusted_keys == ("x.pem", "y.pem")
    keys = Settings.load(environ={"MODELFN_TRUSTED_KEYS": pem + pem}).trusted_keys
    assert len(keys) == 2 and all(k.startswith("-----BEGIN PUBLIC KEY-----") for k in keys)


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"MODELFN_PORT": "http"}, "port"),
        ({"MODELFN_PORT": "70000"}, "port"),
        ({"MODELFN_THREADS": "-1"}, "threads"),
        ({"MODELFN_MODEL_VERSION": "newest"}, "model_version"),
        ({"MODELFN_ALLOW_CUSTOM_CODE": "maybe"}, "allow_custom_code"),
        ({"MODELFN_PINNED_DIGEST": "abc"}, "pinned_digest"),
    ],
)
def test_invalid_values_name_the_setting(env: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.load(environ=env)
    assert info.value.field == field


def test_unknown_settings_are_refused_with_the_valid_list(tmp_path: Path) -> None:
    file = tmp_path / "s.toml"
    file.write_text("prot = 1\n")
    with pytest.raises(ConfigError, match="prot.*valid"):
        Settings.load(environ={}, config_file=str(file))
    with pytest.raises(ConfigError, match="unknown setting"):
        Settings.load(environ={}, bogus=1)


def test_every_field_has_one_env_name() -> None:
    assert ENV_NAMES["store_url"] == "MODELFN_STORE_URL"
    assert len(set(ENV_NAMES.values())) == len(ENV_NAMES)
