"""Issue 11 item 7: sign-in throttling that cannot lock anyone out, shared through the store by
every API process, and that believes X-Forwarded-For only from a trusted proxy — on every store."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from soc_api.client import forwarded_client
from soc_api.main import create_app
from soc_api.services import accounts
from soc_api.services.throttle import LoginThrottle, address_key, purge_expired
from soc_core.auth import PROVINCE, Membership
from soc_core.config import Settings, ThrottleSettings
from soc_core.store import Store

PASSWORD = "a-very-long-password"
WRONG = "not-the-right-password"
ATTACKER = "203.0.113.66"
ADMIN_DESK = "198.51.100.10"
PROXY = "10.1.2.3"


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture
def seeded(store: Store) -> Store:
    accounts.add_tenant(store, tenant_id="police", name="police")
    accounts.add_user(store, username="admin", password=PASSWORD, memberships=[Membership(PROVINCE, "admin")])
    accounts.add_user(store, username="ana", password=PASSWORD, memberships=[Membership("police", "analyst")])
    return store


def client_at(app: object, address: str) -> TestClient:
    return TestClient(app, client=(address, 40000))  # type: ignore[arg-type]


def attempt(client: TestClient, username: str, password: str, **headers: str) -> int:
    answer = client.post("/api/auth/login", json={"username": username, "password": password}, headers=headers)
    return int(answer.status_code)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0  # November 2023

    def __call__(self) -> float:
        return self.now


def test_h7_attacker_cannot_lock_out_admin(seeded: Store, settings: Settings) -> None:
    app = create_app(settings, seeded)
    attacker, admin_desk = client_at(app, ATTACKER), client_at(app, ADMIN_DESK)
    answers = [attacker.post("/api/auth/login", json={"username": "admin", "password": WRONG}) for _ in range(50)]
    codes = [answer.status_code for answer in answers]
    assert codes[:4] == [401] * 4 and set(codes[4:]) == {429}
    refused = answers[-1]
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["content-type"].startswith("application/problem+json")
    # the right password from the attacker's address waits too …
    assert attempt(attacker, "admin", PASSWORD) == 429
    # … but admin at their own desk signs in at once
    assert attempt(admin_desk, "admin", PASSWORD) == 200


def test_h7_delay_grows_and_is_capped(seeded: Store) -> None:
    clock = Clock()
    throttle = LoginThrottle(seeded, ThrottleSettings(), clock=clock)
    waits = []
    for _ in range(12):
        assert throttle.check("admin", ATTACKER) is None
        throttle.failed("admin", ATTACKER)
        wait = throttle.check("admin", ATTACKER)
        waits.append(wait.seconds if wait else 0.0)
        clock.now += waits[-1]  # wait it out, then try again
    assert waits[:3] == [0.0, 0.0, 0.0]  # the first few failures are free
    assert waits[3:8] == [15.0, 30.0, 60.0, 120.0, 240.0]
    assert max(waits) == 900.0 and waits[-1] == 900.0
    throttle.succeeded("admin", ATTACKER)
    assert throttle.check("admin", ATTACKER) is None


def test_h7_per_address_cap_stops_a_spray(seeded: Store, settings: Settings) -> None:
    settings.auth.throttle = ThrottleSettings(address_failures=10)
    app = create_app(settings, seeded)
    sprayer = client_at(app, ATTACKER)
    assert [attempt(sprayer, f"user{i}", WRONG) for i in range(10)] == [401] * 10
    assert attempt(sprayer, "ana", PASSWORD) == 429  # the address is capped, whatever the account
    assert attempt(client_at(app, ADMIN_DESK), "ana", PASSWORD) == 200


def test_h7_ipv6_counted_by_64(seeded: Store) -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert address_key("::ffff:203.0.113.66") == ATTACKER
    throttle = LoginThrottle(seeded, ThrottleSettings(free_failures=1), clock=Clock())
    throttle.failed("admin", "2001:db8:1:2::1")
    throttle.failed("admin", "2001:db8:1:2::2")
    assert throttle.check("admin", "2001:db8:1:2:9::9") is not None  # same /64: one attacker
    assert throttle.check("admin", "2001:db8:1:3::1") is None


def test_h7_forwarded_for_from_untrusted_peer_is_ignored(seeded: Store, settings: Settings) -> None:
    app = create_app(settings, seeded)  # api.trusted_proxies is empty by default
    direct = client_at(app, ATTACKER)
    codes = [attempt(direct, "admin", WRONG, **{"X-Forwarded-For": f"192.0.2.{i}"}) for i in range(6)]
    assert codes == [401] * 4 + [429] * 2  # a new forged address per try changes nothing


def test_h7_forwarded_for_from_trusted_proxy_is_honoured(seeded: Store, settings: Settings) -> None:
    settings.api.trusted_proxies = ["10.1.0.0/16"]
    app = create_app(settings, seeded)
    proxy = client_at(app, PROXY)
    codes = [attempt(proxy, "admin", WRONG, **{"X-Forwarded-For": ATTACKER}) for _ in range(5)]
    assert codes == [401] * 4 + [429]
    # another client behind the same proxy is another address
    assert attempt(proxy, "admin", PASSWORD, **{"X-Forwarded-For": ADMIN_DESK}) == 200
    # a client cannot hide behind a hop it adds itself: the proxy appends the real address last
    assert attempt(proxy, "admin", PASSWORD, **{"X-Forwarded-For": f"{ADMIN_DESK}, {ATTACKER}"}) == 429


def test_h7_audit_records_the_address_the_throttle_uses(seeded: Store, settings: Settings) -> None:
    settings.api.trusted_proxies = ["10.1.0.0/16"]
    app = create_app(settings, seeded)
    proxy = client_at(app, PROXY)
    token = proxy.post("/api/auth/login", json={"username": "ana", "password": PASSWORD}).json()["access_token"]
    refused = proxy.get("/api/audit", headers={"Authorization": f"Bearer {token}", "X-Forwarded-For": ATTACKER})
    assert refused.status_code == 403
    denied = [doc.body for doc in seeded.list_docs("audit", size=100).items if doc.body["action"] == "authz.denied"]
    assert [record["source_ip"] for record in denied] == [ATTACKER]  # not the proxy's address


def test_h7_forwarded_for_walk() -> None:
    trusted = ["10.0.0.0/8"]
    assert forwarded_client("10.0.0.1", ["198.51.100.7, 10.0.0.9"], trusted) == "198.51.100.7"
    assert forwarded_client("10.0.0.1", ["6.6.6.6, 198.51.100.7"], trusted) == "198.51.100.7"
    assert forwarded_client("203.0.113.1", ["198.51.100.7"], trusted) == "203.0.113.1"
    assert forwarded_client("10.0.0.1", ["not-an-ip"], trusted) == "10.0.0.1"
    assert forwarded_client("10.0.0.1", [], trusted) == "10.0.0.1"
    assert forwarded_client("10.0.0.1", ["198.51.100.7"], []) == "10.0.0.1"


def test_h7_two_app_instances_share_state(seeded: Store, settings: Settings) -> None:
    other_store = seeded.reopened()  # its own connections, as another API process has
    try:
        first = client_at(create_app(settings, seeded), ATTACKER)
        second = client_at(create_app(settings, other_store), ATTACKER)
        assert [attempt(first, "admin", WRONG) for _ in range(2)] == [401, 401]
        assert [attempt(second, "admin", WRONG) for _ in range(2)] == [401, 401]
        assert attempt(first, "admin", PASSWORD) == 429
        assert attempt(second, "admin", PASSWORD) == 429
    finally:
        other_store.close()


def test_h7_expired_state_is_purged(seeded: Store) -> None:
    clock = Clock()
    throttle = LoginThrottle(seeded, ThrottleSettings(), clock=clock)
    throttle.failed("admin", ATTACKER)
    assert len(seeded.list_docs("throttle").items) == 2  # the pair and the address
    assert purge_expired(seeded) == 2  # the clock lies years in the past
    assert seeded.list_docs("throttle").items == []
