"""``conveyor serve --hook-source``: deliveries only from GitLab's addresses, refused before the
body is read; the other paths stay open."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conveyor.cli.serve import build_receiver
from conveyor.errors import ConfigError
from conveyor.receiver.app import ReceiverOptions
from conveyor.receiver.sources import SOURCES_ENV, parse_sources, source_allowed
from conveyor.receiver.worker import WorkerOptions
from tests.receiver import payloads as p
from tests.receiver.test_intake_hardening import _open_body, _status

HOOK = "/hooks/gitlab"


def test_sources_parse_networks_and_single_addresses_split_on_commas_and_spaces() -> None:
    sources = parse_sources(["10.0.0.0/8, 2001:db8::/32", "203.0.113.7 10.0.0.0/8"])
    assert [str(n) for n in sources] == ["10.0.0.0/8", "2001:db8::/32", "203.0.113.7/32"]
    assert parse_sources([""]) == ()


@pytest.mark.parametrize("bad", ["10.0.0.1/8", "gitlab.com", "10.0.0.0/33", "--upload-pack"])
def test_a_source_that_is_not_a_network_is_refused_naming_it(bad: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_sources(["10.0.0.0/8", bad], origin=SOURCES_ENV)
    assert SOURCES_ENV in err.value.message and repr(bad) in err.value.message


def test_source_allowed_matches_v4_v6_and_mapped_clients_and_refuses_the_unknown() -> None:
    sources = parse_sources(["10.0.0.0/8", "2001:db8::/32"])
    assert source_allowed(("10.1.2.3", 5000), sources)
    assert source_allowed(["2001:db8::7", 5000], sources)
    assert source_allowed(("::ffff:10.1.2.3", 5000), sources)  # dual-stack socket
    assert not source_allowed(("11.0.0.1", 5000), sources)
    assert not source_allowed(("::ffff:11.0.0.1", 5000), sources)
    assert not source_allowed(None, sources)  # a Unix socket: no address to check
    assert not source_allowed(("not-an-address", 0), sources)


@given(st.ip_addresses(v=4), st.ip_addresses(v=4), st.integers(0, 32))
def test_a_mapped_client_gets_the_verdict_of_its_ipv4_address(
    client: ipaddress.IPv4Address, base: ipaddress.IPv4Address, prefix: int
) -> None:
    network = ipaddress.ip_network(f"{base}/{prefix}", strict=False)
    mapped = ipaddress.IPv6Address(f"::ffff:{client}")
    verdict = client in network
    assert source_allowed((str(client), 1), (network,)) is verdict
    assert source_allowed((str(mapped), 1), (network,)) is verdict


def test_the_environment_gives_the_default_and_a_bad_value_stops_serve(
    spec_paths: list[Path], tmp_path: Path
) -> None:
    env = {"CONVEYOR_SECRET": p.SECRET, "CONVEYOR_CONFIG": str(tmp_path / "none.toml")}
    (tmp_path / "none.toml").write_text("")

    def build(extra: dict[str, str], given: tuple[str, ...] = ()) -> Any:
        return build_receiver(
            tuple(spec_paths),
            state=tmp_path / "state",
            dispatch="none",
            workers=0,
            max_body=1 << 20,
            require_signature=False,
            env={**env, **extra},
            hook_sources=given,
        )

    assert build({}).options.hook_sources == ()
    from_env = build({SOURCES_ENV: "192.0.2.0/24"}).options.hook_sources
    assert [str(n) for n in from_env] == ["192.0.2.0/24"]
    given_wins = build({SOURCES_ENV: "192.0.2.0/24"}, ("198.51.100.0/24",))
    assert [str(n) for n in given_wins.options.hook_sources] == ["198.51.100.0/24"]
    with pytest.raises(ConfigError, match=SOURCES_ENV):
        build({SOURCES_ENV: "192.0.2.1/24"})


def test_a_delivery_from_elsewhere_is_refused_before_its_body_and_nothing_is_stored(
    start_receiver: Any,
) -> None:
    running = start_receiver(
        options=ReceiverOptions(hook_sources=parse_sources(["10.0.0.0/8"])),
        worker_options=WorkerOptions(workers=0),
    )
    payload = p.push()
    answer = running.client.post(HOOK, content=p.body(payload), headers=p.headers(payload))
    assert answer.status_code == 403, answer.text
    assert answer.json()["reason"] == "source_not_allowed"
    assert answer.headers["connection"] == "close"
    # A head announcing 5 MB and no body at all: answered without waiting for the body (the
    # server's body timeout is 30 s; the socket's 10 s timeout would fail this read first).
    port = int(running.url.rsplit(":", 1)[1])
    with _open_body(port, payload, 5_000_000, b"") as sock:
        assert _status(sock) == 403
        while sock.recv(65536):
            pass  # the rest of the answer, then the close (a timeout here fails the test)
    assert running.client.get("/healthz").status_code == 200  # other paths stay open
    queue = running.queue()
    try:
        assert queue.list_events(limit=10) == []
    finally:
        queue.close()
    metrics = running.client.get("/metrics").text
    assert 'conveyor_webhooks_rejected_total{reason="source_not_allowed"} 2' in metrics


def test_a_listed_source_and_a_trusted_proxys_client_are_served(start_receiver: Any) -> None:
    running = start_receiver(
        options=ReceiverOptions(hook_sources=parse_sources(["127.0.0.0/8"])),
        worker_options=WorkerOptions(workers=0),
    )
    payload = p.push()
    assert (
        running.client.post(HOOK, content=p.body(payload), headers=p.headers(payload)).status_code
        == 202
    )
    # Behind a proxy on 127.0.0.1 (trusted by uvicorn by default) the client it names counts.
    other = p.push(branch="release/2")
    proxied = {**p.headers(other), "X-Forwarded-For": "203.0.113.9"}
    answer = running.client.post(HOOK, content=p.body(other), headers=proxied)
    assert answer.status_code == 403
    assert answer.json()["reason"] == "source_not_allowed"
