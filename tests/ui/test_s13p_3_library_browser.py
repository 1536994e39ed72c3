"""Issue 12 loose end, item 3, in headless Chromium: with the default configuration
(``playbooks.library: true``, no ``dirs``) the playbooks page lists the shipped library
(``playbooks/library/``): every playbook with its file name, steps and gates, and no problems."""

from __future__ import annotations

from typing import Any

from playbooks.format import LIBRARY_DIR, configured_library
from tests.support.browser import World, shot, sign_in


def test_s13p_3_ui_lists_the_shipped_library(page: Any, world: World) -> None:
    assert world.settings.playbooks.library is True and not world.settings.playbooks.dirs
    shipped = configured_library([], shipped=True)
    assert shipped.errors == [] and len(shipped.playbooks) == 5
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page)
    page.click("[data-testid=nav-playbooks]")
    page.wait_for_selector("[data-testid=playbooks] tr[data-playbook]")
    rows = page.locator("[data-testid=playbooks] tr[data-playbook]")
    listed = sorted(rows.nth(i).get_attribute("data-playbook") for i in range(rows.count()))
    assert listed == sorted(shipped.playbooks), listed
    assert page.locator("[data-testid=playbook-problems]").count() == 0
    ssh = page.locator("tr[data-playbook=ssh-bruteforce]")
    assert "ssh_bruteforce.yml" in ssh.inner_text()
    assert ssh.locator(".chip.gated").inner_text() == "block"  # the containment step waits for an approval
    for name, playbook in shipped.playbooks.items():
        row = page.locator(f"tr[data-playbook={name}]")
        assert [c.strip() for c in row.locator("td.steps .chip").all_inner_texts()] == [s.id for s in playbook.steps]
    assert str(LIBRARY_DIR) not in page.content()  # file names only, never the server's folders
    shot(page, "s13p-library")
    assert errors == []
