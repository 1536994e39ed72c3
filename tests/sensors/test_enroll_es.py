"""A sensor writing straight to a real, secured Elasticsearch with a credential for one tenant.

The node is a dedicated ``DevNode(security=True)``: the administrator is the reserved
``elastic`` user with the keystore's bootstrap password, over plain HTTP on loopback (a
single-node cluster needs no TLS). The sensor's credential is either

* a file-realm user holding exactly the role descriptor the API key of ``soc sensor enroll``
  carries (``sensor_role_descriptor``), so the privileges themselves are enforced by the real
  node here. The dev distribution cannot store API keys (its security index needs the
  analysis-common module it lacks); ``test_enroll_creates_a_key_or_says_why_not`` checks that
  enrolment either makes the key (a full cluster) or says exactly that (this one).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from elasticsearch import AuthorizationException, Elasticsearch
from typer.testing import CliRunner

from sensors import cli
from sensors.enroll import sensor_role_descriptor
from soc_core.devnode import DevNode, distribution_home, find_jdk
from soc_core.events import make_event
from soc_core.store import ElasticsearchStore, Store
from tests.shared_data import dev_node
from tests.support.waiting import wait_for

pytestmark = pytest.mark.elasticsearch

TENANT = "police"
OTHER = "health"
SENSOR_USER = "sensor_police"
SENSOR_PASSWORD = "sensor-police-password"


def _no_product_store() -> Store:
    raise AssertionError("these commands use the sensor's own Elasticsearch credential, never the product store")


SENSOR_APP = cli.build_sensor_app(_no_product_store)


@dataclass(frozen=True)
class SecureNode:
    url: str
    node: DevNode

    @property
    def admin_auth(self) -> tuple[str, str]:
        return ("elastic", self.node.password)

    def admin(self) -> Elasticsearch:
        return Elasticsearch(self.url, basic_auth=self.admin_auth, request_timeout=30)


@pytest.fixture(scope="module")
def secure_node() -> Iterator[SecureNode]:
    with dev_node("secured", security=True) as node:
        admin = ElasticsearchStore(node.url, username="elastic", password=node.password)
        admin.setup()  # index templates: the sensor's credential cannot create them
        admin.close()
        yield SecureNode(node.url, node)


def add_file_realm_user(secure: SecureNode, username: str, password: str, role: dict[str, Any]) -> None:
    """A user of the node's file realm with one role; waits until the node has reloaded them."""
    conf = secure.node.workdir / "config"
    role_name = f"{username}_role"
    file_role = {k: v for k, v in role.items() if k not in ("applications", "run_as")}
    (conf / "roles.yml").write_text(yaml.safe_dump({role_name: file_role}))
    env = dict(os.environ, ES_JAVA_HOME=str(find_jdk()), ES_PATH_CONF=str(conf))
    users = distribution_home() / "bin" / "elasticsearch-users"
    subprocess.run(
        [str(users), "useradd", username, "-p", password, "-r", role_name],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    owner = secure.node.workdir.stat()
    for path in conf.iterdir():  # the node (another user when we are root) must read them
        os.chown(path, owner.st_uid, owner.st_gid)

    def answer() -> tuple[int, list[str]]:
        response = httpx.get(f"{secure.url}/_security/_authenticate", auth=(username, password), timeout=5)
        return response.status_code, response.json().get("roles", []) if response.status_code == 200 else []

    # the file realm re-reads its files every 5 s
    wait_for(
        answer, f"the node to accept file-realm user {username}", until=lambda seen: role_name in seen[1], poll=0.5
    )


def secret_file(path: Path, text: str) -> Path:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def sensor_output(secure_node: SecureNode, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The ``elasticsearch:`` section of the police sensor's YAML, with its credential."""
    secrets = tmp_path_factory.mktemp("secrets")
    add_file_realm_user(secure_node, SENSOR_USER, SENSOR_PASSWORD, sensor_role_descriptor(TENANT))
    password_file = secret_file(secrets / "es-password", SENSOR_PASSWORD)
    return {"url": secure_node.url, "username": SENSOR_USER, "password_file": str(password_file)}


def test_enroll_creates_a_key_or_says_why_not(secure_node: SecureNode, tmp_path: Path) -> None:
    key_file = tmp_path / "sensor-es.key"
    args = ["enroll", "--es-url", secure_node.url, "--tenant", TENANT, "--sensor-id", "web01"]
    args += ["--es-user", "elastic", "--es-password", secure_node.node.password, "--key-file", str(key_file)]
    result = CliRunner().invoke(SENSOR_APP, args)
    if result.exit_code == 0:  # a cluster that can store API keys
        assert key_file.stat().st_mode & 0o777 == 0o600
        snippet = yaml.safe_load(result.stdout)
        assert snippet["tenant"] == TENANT and snippet["elasticsearch"]["api_key_file"] == str(key_file)
    else:  # this distribution: a clear reason, no traceback, no key file left behind
        assert "analysis-common" in result.output and "Traceback" not in result.output
        assert not key_file.exists()


def sensor_client(secure: SecureNode, output: dict[str, Any]) -> Elasticsearch:
    if "api_key_file" in output:
        return Elasticsearch(secure.url, api_key=Path(output["api_key_file"]).read_text().strip())
    password = Path(output["password_file"]).read_text().strip()
    return Elasticsearch(secure.url, basic_auth=(output["username"], password))


def sensor_store(secure: SecureNode, output: dict[str, Any]) -> ElasticsearchStore:
    if "api_key_file" in output:
        return ElasticsearchStore(secure.url, api_key=Path(output["api_key_file"]).read_text().strip())
    password = Path(output["password_file"]).read_text().strip()
    return ElasticsearchStore(secure.url, username=output["username"], password=password)


def event_indices(secure: SecureNode) -> dict[str, int]:
    admin = secure.admin()
    try:
        admin.indices.refresh(index="canhgac-events-*", allow_no_indices=True)
        rows = admin.cat.indices(index="canhgac-events-*", format="json", h="index,docs.count").body
        assert isinstance(rows, list), rows
        return {row["index"]: int(row["docs.count"]) for row in rows}
    finally:
        admin.close()


def test_log_sensor_with_its_credential_stores_its_tenants_events(
    secure_node: SecureNode, sensor_output: dict[str, Any], tmp_path: Path
) -> None:
    log = tmp_path / "auth.log"
    log.write_text(
        "".join(
            f"Mar  3 10:00:{i:02d} portal sshd[{700 + i}]: Failed password for root from 203.0.113.{i} port 22 ssh2\n"
            for i in range(7)
        )
        + "not a syslog line at all\n"
    )
    config = {
        "tenant": TENANT,
        "sensor_id": f"web01-{tmp_path.name}",
        "state_dir": str(tmp_path / "state"),
        "inputs": [{"paths": [str(log)], "parser": "auth", "from_beginning": True}],
        "elasticsearch": sensor_output,
    }
    config_file = tmp_path / "sensor.yml"
    config_file.write_text(yaml.safe_dump(config))

    result = CliRunner().invoke(SENSOR_APP, ["logs", "--config", str(config_file), "--once"])

    assert result.exit_code == 0, result.output
    counters = json.loads(result.stdout.strip().splitlines()[-1])
    assert counters["events_out"] == 8 and counters["dead_lettered"] == 0
    assert counters["parse_failures"] == 1 and counters["lag_seconds"] == 0
    admin = secure_node.admin()
    try:
        admin.indices.refresh(index="canhgac-events-*")
        hits = admin.search(index="canhgac-events-*", query={"term": {"observer.name": config["sensor_id"]}}, size=100)[
            "hits"
        ]["hits"]
    finally:
        admin.close()
    assert len(hits) == 8
    assert {hit["_index"].split("-")[2] for hit in hits} == {TENANT}
    assert {hit["_source"]["organization.id"] for hit in hits} == {TENANT}


def test_a_write_claiming_another_tenant_is_refused(secure_node: SecureNode, sensor_output: dict[str, Any]) -> None:
    forged_index = f"canhgac-events-{OTHER}-system.auth-2026.03.03"
    client = sensor_client(secure_node, sensor_output)
    try:
        response = client.bulk(
            operations=[{"create": {"_index": forged_index, "_id": "forged-1"}}, {"message": "forged"}]
        )
    finally:
        client.close()
    assert response["errors"] is True
    assert response["items"][0]["create"]["status"] == 403

    # Through the store: an event stamped with another tenant goes to that tenant's index, and
    # the credential refuses it (the sensor itself always stamps its own tenant).
    forged = make_event(
        tenant=OTHER,
        dataset="system.auth",
        sensor_id="web01",
        source="forged",
        position=1,
        raw=b"forged line",
        fields={"message": "forged line"},
    )
    store = sensor_store(secure_node, sensor_output)
    try:
        result = store.add_events([forged])
    finally:
        store.close()
    assert [item.status for item in result.items] == ["rejected"]
    assert (result.items[0].reason or "").startswith("403")
    assert not [name for name in event_indices(secure_node) if f"-events-{OTHER}-" in name]


def test_the_sensor_credential_cannot_read_or_administer(
    secure_node: SecureNode, sensor_output: dict[str, Any]
) -> None:
    own = make_event(
        tenant=TENANT,
        dataset="system.auth",
        sensor_id="web01",
        source="own",
        position=1,
        raw=b"own line",
        fields={"message": "own line"},
    )
    store = sensor_store(secure_node, sensor_output)
    try:
        assert [item.status for item in store.add_events([own]).items] in (["created"], ["duplicate"])
    finally:
        store.close()
    client = sensor_client(secure_node, sensor_output)
    try:
        for index in (f"canhgac-events-{TENANT}-*", f"canhgac-events-{OTHER}-*", "canhgac-docs-*", "*"):
            with pytest.raises(AuthorizationException):
                client.search(index=index, query={"match_all": {}})
        with pytest.raises(AuthorizationException):
            client.get(index=next(iter(event_indices(secure_node))), id=str(own["event.id"]))
        with pytest.raises(AuthorizationException):
            client.index(index="canhgac-docs-alerts", id="x", document={"tenant": TENANT})
        with pytest.raises(AuthorizationException):
            client.cluster.health()
        with pytest.raises(AuthorizationException):
            client.indices.put_index_template(name="evil", index_patterns=["canhgac-events-*"], priority=999)
    finally:
        client.close()


def test_the_administrator_sees_only_police_events(secure_node: SecureNode, sensor_output: dict[str, Any]) -> None:
    indices = event_indices(secure_node)
    assert indices, "the sensor tests above stored events"
    assert all(name.startswith(f"canhgac-events-{TENANT}-") for name in indices), indices
