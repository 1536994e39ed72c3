"""The `soc` command as a user runs it: real processes, real files."""

from __future__ import annotations

from pathlib import Path

from soc_core.query import event_query
from soc_core.store import SqliteStore
from tests.support.cli import soc


def test_version(tmp_path: Path) -> None:
    done = soc("version", cwd=tmp_path)
    assert done.returncode == 0 and "canhgac" in done.stdout


def test_bad_configuration_is_one_paragraph_naming_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "soc.yml").write_text("store:\n  backend: mongo\napi:\n  colour: blue\n")
    done = soc("--config", "soc.yml", "config", "show", cwd=tmp_path)
    assert done.returncode == 2
    assert "soc.yml" in done.stderr and "store.backend" in done.stderr and "api.colour: unknown key" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_unreachable_elasticsearch_names_the_url(tmp_path: Path) -> None:
    env = {"SOC_STORE__BACKEND": "elasticsearch", "SOC_STORE__ELASTICSEARCH__URL": "http://127.0.0.1:9"}
    done = soc("up", cwd=tmp_path, env=env)
    assert done.returncode == 2
    assert "http://127.0.0.1:9" in done.stderr and "unreachable" in done.stderr
    assert "Traceback" not in done.stderr


def test_config_show_hides_secrets(tmp_path: Path) -> None:
    env = {"SOC_STORE__ELASTICSEARCH__PASSWORD": "hunter2-canary"}
    done = soc("config", "show", cwd=tmp_path, env=env)
    assert done.returncode == 0
    assert "hunter2-canary" not in done.stdout and "password: '***'" in done.stdout


def test_rules_check_reports_every_broken_rule_with_its_file(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "good.yml").write_text(
        "title: Good\nid: 0e6a3f5e-1b7d-4b1c-9a53-6c0d3e0d7b01\nlogsource: {product: linux, service: sshd}\n"
        "detection:\n  sel: {event.outcome: failure}\n  condition: sel\nlevel: low\n"
    )
    (rules / "broken.yml").write_text("title: Broken\nid: x\ndetection:\n  condition: nothing_here\n")
    (rules / "yaml.yml").write_text("title: [unclosed\n")
    done = soc("rules", "check", str(rules), cwd=tmp_path)
    assert done.returncode == 1
    assert "broken.yml" in done.stdout and "yaml.yml" in done.stdout
    assert soc("rules", "check", cwd=tmp_path).returncode == 0
    assert soc("rules", "test", cwd=tmp_path).returncode == 0


def test_tenants_users_and_keys(tmp_path: Path) -> None:
    assert soc("tenant", "add", "so_y_te", "Sở Y tế", cwd=tmp_path).returncode == 0
    bad = soc("tenant", "add", "so-y-te", "x", cwd=tmp_path)
    assert bad.returncode == 2 and "tenant id" in bad.stderr
    added = soc(
        "user", "add", "lan", "-m", "so_y_te:analyst", "--password-stdin", cwd=tmp_path, stdin="long-password-123\n"
    )
    assert added.returncode == 0, added.stderr
    short = soc("user", "add", "minh", "-m", "so_y_te:analyst", "--password-stdin", cwd=tmp_path, stdin="short\n")
    assert short.returncode == 2 and "12 characters" in short.stderr
    key = soc("apikey", "create", "web01", "--tenant", "so_y_te", "--owner", "lan", cwd=tmp_path)
    assert key.returncode == 0 and "cgk_" in key.stdout
    assert soc("user", "disable", "lan", cwd=tmp_path).returncode == 0


def test_sensor_logs_imports_a_file_into_the_embedded_store(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text(
        "".join(
            f"Nov 25 10:00:{i:02d} web01 sshd[{100 + i}]: "
            f"Failed password for root from 203.0.113.7 port {4000 + i} ssh2\n"
            for i in range(30)
        )
    )
    done = soc(
        "sensor",
        "logs",
        str(log),
        "--tenant",
        "police",
        "--sensor-id",
        "web01",
        "--from-beginning",
        "--once",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    store = SqliteStore(tmp_path / "var" / "canhgac.db")
    assert store.count_events(event_query(tenants=["police"], query="source.ip:203.0.113.7"))[0].count == 30
    again = soc(
        "sensor",
        "logs",
        str(log),
        "--tenant",
        "police",
        "--sensor-id",
        "web01",
        "--from-beginning",
        "--once",
        cwd=tmp_path,
    )
    assert again.returncode == 0
    assert store.count_events(event_query(tenants=["police"]))[0].count == 30


def test_rules_import_and_backtest(tmp_path: Path) -> None:
    rules = tmp_path / "incoming"
    rules.mkdir()
    (rules / "good.yml").write_text(
        "title: Root Login Failure\nid: 6f7a1d2e-9b3c-4d5e-8f01-23456789abcd\n"
        "logsource: {product: linux, service: sshd}\n"
        "detection:\n  sel: {event.outcome: failure, user.name: root}\n  condition: sel\nlevel: medium\n"
    )
    (rules / "bad.yml").write_text(
        "title: Bad Modifier\nid: 7f7a1d2e-9b3c-4d5e-8f01-23456789abcd\nlogsource: {product: linux}\n"
        "detection:\n  sel: {user.name|nosuchmodifier: x}\n  condition: sel\n"
    )
    imported = soc("rules", "import", str(rules), cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert "1 rules imported" in imported.stdout and "could not be compiled" in imported.stdout
    assert "1 rules imported" not in soc("rules", "import", str(rules), cwd=tmp_path).stdout
    log = tmp_path / "auth.log"
    log.write_text(
        "".join(
            f"Nov 25 10:00:{i:02d} web01 sshd[{100 + i}]: Failed password for root from 203.0.113.7 port 22 ssh2\n"
            for i in range(4)
        )
    )
    assert (
        soc(
            "sensor",
            "logs",
            str(log),
            "--tenant",
            "police",
            "--sensor-id",
            "w",
            "--from-beginning",
            "--once",
            cwd=tmp_path,
        ).returncode
        == 0
    )
    days = soc("rules", "backtest", "6f7a1d2e-9b3c-4d5e-8f01-23456789abcd", "--days", "365", cwd=tmp_path)
    assert days.returncode == 0, days.stderr
    assert "4 hits" in days.stdout
