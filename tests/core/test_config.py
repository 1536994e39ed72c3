from pathlib import Path

import pytest

from soc_core.config import load_settings
from soc_core.errors import ConfigError


def test_defaults_are_the_embedded_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOC_CONFIG", raising=False)
    settings = load_settings()
    assert settings.store.backend == "sqlite"
    assert settings.sqlite_path == Path("var/canhgac.db")


def test_unknown_keys_and_bad_values_name_the_key_and_file(tmp_path: Path) -> None:
    path = tmp_path / "soc.yml"
    path.write_text("store:\n  backend: mongo\n  elasticsearch:\n    replica: 1\napi:\n  port: 0\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    text = caught.value.render()
    assert str(path) in text
    assert "store.backend" in text
    assert "store.elasticsearch.replica: unknown key" in text
    assert "api.port" in text


def test_yaml_syntax_errors_give_the_line(tmp_path: Path) -> None:
    path = tmp_path / "soc.yml"
    path.write_text("store:\n  backend: sqlite\n bad indent: [\n")
    with pytest.raises(ConfigError, match=r"soc\.yml:\d+"):
        load_settings(path)


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "soc.yml"
    path.write_text("api:\n  port: 9000\n")
    monkeypatch.setenv("SOC_API__PORT", "9100")
    monkeypatch.setenv("SOC_STORE__ELASTICSEARCH__URL", "http://10.0.0.1:9200/")
    settings = load_settings(path)
    assert settings.api.port == 9100
    assert settings.store.elasticsearch.url == "http://10.0.0.1:9200"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "absent.yml")
