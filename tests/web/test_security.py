"""Who may see and change what: no session, a wrong role, a cross-site post and a look at
another tenant are all refused, and nothing changes."""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from router.auth import Role
from router.pb.omniroute.v1 import resources_pb2 as pb
from tests.web.conftest import Floor, free_port, log_in


@contextlib.contextmanager
def _session(
    floor: Floor, tenant: str = "t1", role: Role = Role.SUPERVISOR
) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=floor.url, timeout=10) as client:
        reply = client.post(
            "/login", data={"api_key": floor.keys[(tenant, role)]}, headers={"origin": floor.url}
        )
        assert reply.status_code == 303, reply.text
        yield client


def _token(client: httpx.Client) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get("/floor").text)
    assert match
    return match.group(1)


def _first_snapshot(client: httpx.Client) -> dict[str, Any]:
    with client.stream("GET", "/events") as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                return dict(json.loads(line[6:]))
    raise AssertionError("no snapshot on the stream")


def test_without_a_session_nothing_is_shown_or_changed(floor: Floor, browser: Any) -> None:
    with httpx.Client(base_url=floor.url, timeout=10) as client:
        assert client.get("/floor").headers["location"] == "/login"
        assert client.get("/events").status_code == 401
        form = {"agent": "ana", "state": "away", "reason": "break"}
        refused = client.post("/actions/state", data=form, headers={"origin": floor.url})
        assert refused.status_code == 401
    assert floor.agent("ana").state == pb.AGENT_STATE_AVAILABLE
    page = browser.new_context().new_page()
    page.goto(f"{floor.url}/floor")
    page.wait_for_url("**/login")
    page.context.close()


def test_keys_of_other_roles_or_unknown_keys_cannot_sign_in(floor: Floor) -> None:
    with httpx.Client(base_url=floor.url, timeout=10) as client:
        for key in (floor.keys[("t1", Role.PLATFORM)], floor.keys[("t1", Role.AGENT)], "omr_x"):
            reply = client.post("/login", data={"api_key": key}, headers={"origin": floor.url})
            assert reply.status_code == 401
            assert "omr_session" not in reply.headers.get("set-cookie", "")
    with _session(floor, role=Role.ADMIN) as admin:
        assert admin.get("/floor").status_code == 200


def test_the_session_cookie_is_httponly_samesite_strict_and_pages_have_a_strict_csp(
    floor: Floor,
) -> None:
    with httpx.Client(base_url=floor.url, timeout=10) as client:
        reply = client.post(
            "/login",
            data={"api_key": floor.keys[("t1", Role.SUPERVISOR)]},
            headers={"origin": floor.url},
        )
        cookie = reply.headers["set-cookie"].lower()
        page = client.get("/floor")
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert floor.keys[("t1", Role.SUPERVISOR)] not in page.text


def test_a_post_from_another_origin_or_without_the_form_token_is_refused(floor: Floor) -> None:
    with _session(floor) as client:
        form = {"agent": "ana", "state": "away", "reason": "break", "csrf": _token(client)}
        evil = client.post("/actions/state", data=form, headers={"origin": "http://evil.example"})
        assert evil.status_code == 403
        silent = client.post("/actions/state", data=form)  # says nothing of its origin
        assert silent.status_code == 403
        no_token = {**form, "csrf": ""}
        refused = client.post("/actions/state", data=no_token, headers={"origin": floor.url})
        assert refused.status_code == 403
    assert floor.agent("ana").state == pb.AGENT_STATE_AVAILABLE


@pytest.fixture
def attacker_site() -> Iterator[tuple[str, dict[str, str]]]:
    """Another site (``localhost``, not ``127.0.0.1``) serving one page of `pages`."""
    pages: dict[str, str] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path, "").encode()
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{port}", pages
    server.shutdown()
    server.server_close()


def test_a_cross_site_form_post_in_the_browser_changes_nothing(
    floor: Floor, browser: Any, attacker_site: tuple[str, dict[str, str]]
) -> None:
    site, pages = attacker_site
    pages["/"] = (
        f'<form method="post" action="{floor.url}/actions/state">'
        '<input name="agent" value="ana"><input name="state" value="signed_out">'
        '<button id="go">win a prize</button></form>'
    )
    page = log_in(browser, floor)  # a signed-in supervisor visits the other site
    page.goto(site + "/")
    with page.expect_navigation() as nav:
        page.click("#go")
    assert nav.value.status in (401, 403)
    assert floor.agent("ana").state == pb.AGENT_STATE_AVAILABLE
    page.context.close()


def test_a_supervisor_of_another_tenant_sees_and_changes_nothing_of_t1(
    floor: Floor, browser: Any
) -> None:
    page = log_in(browser, floor, tenant="t2")
    page.wait_for_selector('tr.agent[data-agent="zed"]')
    assert page.locator('tr.agent[data-agent="ana"]').count() == 0
    assert "Ana Silva" not in page.content()
    assert "fraud" not in page.content()
    with _session(floor) as t1:
        contact_id = re.findall(r'data-contact="([0-9a-f]+)"', t1.get("/floor").text)[0]
    page.goto(f"{floor.url}/contacts/{contact_id}")
    assert "Not found" in page.inner_text("main")
    page.goto(f"{floor.url}/floor")
    page.fill("#skill-agent", "ana")
    page.fill("#skill-name", "billing")
    page.fill("#skill-level", "1")
    page.click("#skill-form button[value=set]")
    assert "not found" in page.inner_text('#skill-form [data-error-for="agent"]')
    assert {s.skill: s.proficiency for s in floor.agent("ana").skills}["billing"] == 5
    with _session(floor, tenant="t2") as t2:
        snapshot = json.dumps(_first_snapshot(t2))
    assert "zed" in snapshot
    for t1_thing in ("Ana Silva", '"ana"', "fraud", contact_id):
        assert t1_thing not in snapshot
    page.context.close()
