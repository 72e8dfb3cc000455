"""The dashboard in Debian's chromium against a real ``conveyor serve``: filters, decision trail,
hostile strings shown as text, and who may see it."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.dashboard.conftest import TOKEN
from tests.receiver import payloads as p
from tests.receiver.specs import write_specs

HOSTILE_MESSAGE = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'
HOSTILE_BRANCH = 'x"><img/src=x/onerror=alert(2)>'


@pytest.fixture
def specs(tmp_path: Path) -> list[Path]:
    return write_specs(tmp_path / "specs")


def test_events_list_filters_by_status_and_project(
    serve: Any, specs: list[Path], page: Page
) -> None:
    server = serve(specs, "--dispatch", "none")
    built = server.send(p.push(branch="main")).json()["id"]
    ignored = server.send(p.push(branch="feature/nope", after=p.SHA_C)).json()["id"]
    other = server.send(p.push("demo/backend/api", after=p.SHA_A)).json()["id"]

    page.goto(server.url + "/dashboard/events")
    rows = page.locator("table.events tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.first).to_have_attribute("data-id", str(other))  # newest first

    page.select_option("select[name=status]", "ignored")
    page.click("#filters button")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-id", str(ignored))
    expect(rows.first.locator(".decision")).to_have_text("ignored")
    expect(rows.first.locator(".why")).not_to_be_empty()

    page.select_option("select[name=status]", "")
    page.fill("input[name=project]", "demo/app")
    page.click("#filters button")
    expect(rows).to_have_count(2)
    assert {rows.nth(i).get_attribute("data-id") for i in range(2)} == {str(built), str(ignored)}


def test_event_page_shows_the_decision_trail(serve: Any, specs: list[Path], page: Page) -> None:
    server = serve(specs, "--dispatch", "none", "--workers", "0")
    older = server.send(p.push(branch="main", after=p.SHA_B)).json()["id"]
    newer = server.send(p.push(branch="main", after=p.SHA_C)).json()["id"]

    page.goto(f"{server.url}/dashboard/events/{older}")
    trail = page.locator("#trail")
    expect(trail.locator(".decision")).to_contain_text(f"superseded: superseded by event {newer}")
    trail.get_by_role("link", name=f"event #{newer}").click()
    expect(page.locator("h1")).to_contain_text(f"Event {newer}")
    expect(page.locator("#trail .decision")).to_contain_text("queued: waiting for a worker")
    # the headers that matter, never the token
    expect(page.locator(".facts")).to_contain_text("idempotency key")
    assert p.headers(p.push())["X-Gitlab-Token"] not in page.content()


def test_done_event_lists_its_attempt(serve: Any, specs: list[Path], page: Page) -> None:
    server = serve(specs, "--dispatch", "none")
    event = server.send(p.push(branch="main")).json()["id"]
    deadline = time.monotonic() + 60
    while True:  # the page is rendered once: load it again until the worker has finished
        page.goto(f"{server.url}/dashboard/events/{event}")
        # the attempt row is written when the worker claims the event, before it finishes
        done = page.locator("#trail .decision").inner_text().startswith("done")
        if (done and page.locator("#trail .attempt").count()) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    expect(page.locator("#trail .attempt")).to_contain_text("stored only (--dispatch none)")
    expect(page.locator("#trail .decision")).to_have_text("done: dispatched and finished")


def test_hostile_commit_message_and_branch_are_text(
    serve: Any, specs: list[Path], page: Page, page_errors: list[str]
) -> None:
    server = serve(specs, "--dispatch", "none")
    event = server.send(p.push(branch=HOSTILE_BRANCH, message=HOSTILE_MESSAGE)).json()["id"]

    page.goto(server.url + "/dashboard/events")
    expect(page.locator("td.ref").first).to_have_text(f"refs/heads/{HOSTILE_BRANCH}")
    page.goto(f"{server.url}/dashboard/events/{event}")
    expect(page.locator(".commit .message").last).to_have_text(HOSTILE_MESSAGE)
    expect(page.locator("#payload")).to_contain_text("<script>alert(1)</script>")
    assert page.locator("main img").count() == 0
    assert page.locator("main script").count() == 0
    page.wait_for_timeout(500)
    assert page_errors == []


def non_loopback_address() -> str:
    """An address of this machine that is not loopback (the test binds the server to it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing address
        address = str(sock.getsockname()[0])
    if address.startswith("127."):
        pytest.fail("this machine has no non-loopback IPv4 address to bind to")
    return address


def test_non_loopback_request_is_refused_without_the_token(serve: Any, specs: list[Path]) -> None:
    host = non_loopback_address()
    server = serve(specs, "--dispatch", "none", host=host)
    answer = httpx.get(server.url + "/dashboard/events")
    assert answer.status_code == 403
    assert "CONVEYOR_DASHBOARD_TOKEN" in answer.text


def test_non_loopback_needs_the_token_then_may_act(
    serve: Any, specs: list[Path], page: Page
) -> None:
    host = non_loopback_address()
    server = serve(specs, "--dispatch", "none", host=host, CONVEYOR_DASHBOARD_TOKEN=TOKEN)
    event = server.send(p.push(branch="main")).json()["id"]
    assert httpx.get(server.url + "/dashboard/events").status_code == 401
    bad = httpx.get(server.url + "/dashboard/events", headers={"Authorization": "Bearer wrong"})
    assert bad.status_code == 401
    good = httpx.get(server.url + "/dashboard/events", headers={"Authorization": f"Bearer {TOKEN}"})
    assert good.status_code == 200 and TOKEN not in good.text
    # without the CSRF field even a bearer cannot act
    refused = httpx.post(
        f"{server.url}/dashboard/events/{event}/replay",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert refused.status_code == 403

    page.goto(server.url + "/dashboard/events")  # redirected to the login form
    page.fill("input[name=token]", "wrong")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_contain_text("not the dashboard token")
    page.fill("input[name=token]", TOKEN)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Events")
    cookie = next(c for c in page.context.cookies() if c["name"] == "conveyor_dashboard")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"] != TOKEN
    page.goto(f"{server.url}/dashboard/events/{event}")
    page.click("#replay")
    expect(page.locator("h1")).to_contain_text(f"Event {event + 1}")
    expect(page.locator(".facts")).to_contain_text(f"#{event}")
