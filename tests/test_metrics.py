"""`GET /metrics`: real traffic moves the counters by exactly what it did; the token guard; no secret in it."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from codeconnect import metrics
from codeconnect.collab.protocol import CloseCode
from codeconnect.config import Settings
from codeconnect.errors import TooManyRequests, install_error_handlers
from tests.collab.yclient import YClient, collab_url, join, new_session
from tests.conftest import ServerFactory, eventually


class Scrape:
    """One answer of `/metrics`, parsed with prometheus_client's own parser: sample values by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 for a series not exported yet (a labelled counter nobody has counted)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}


async def scrape(client: httpx.AsyncClient, token: str | None = None) -> Scrape:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    r = await client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return Scrape(r.text)


def moved(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


async def test_counters_move_by_what_the_traffic_did(server_factory: ServerFactory) -> None:
    server = await server_factory()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        before = await scrape(http)
        session = await new_session(http, title="Metered")
        sid = session["id"]
        ada = await join(http, sid, "Ada")
        bob = await join(http, sid, "Bob")
        assert (await http.get(f"/v1/sessions/{sid}")).status_code == 200
        assert (await http.get("/v1/sessions/NoSuchSession0000000000")).status_code == 404
        assert (await http.get("/no/such/page/at/all")).status_code == 404

        a = await YClient(collab_url(server.ws_url, sid, ada["token"])).connect()
        b = await YClient(collab_url(server.ws_url, sid, bob["token"])).connect()
        during = await scrape(http)
        a.code += "print('metered')\n"
        await b.wait_for(lambda: "metered" in b.text)
        # Refused: a wrong token (4401) and a session that does not exist (4404).
        wrong = await YClient(collab_url(server.ws_url, sid, "not-a-token")).connect(wait_sync=False)
        assert await wrong.wait_closed() == CloseCode.UNAUTHORIZED
        await wrong.close()
        missing = await YClient(collab_url(server.ws_url, "NoSuchSession0000000000", ada["token"])).connect(
            wait_sync=False
        )
        assert await missing.wait_closed() == CloseCode.NOT_FOUND
        await missing.close()
        await a.close()
        await b.close()

        async def settled() -> bool:
            now = await scrape(http)
            return (
                moved(before, now, "codeconnect_live_closes_total", code="1000") >= 2
                and moved(before, now, "codeconnect_update_log_commit_batch_updates_sum") >= 1
            )

        await eventually(settled)
        after = await scrape(http)

    # REST, by route template and status.
    requests = "codeconnect_http_requests_total"
    assert moved(before, after, requests, method="POST", route="/v1/sessions", status="201") == 1
    assert moved(before, after, requests, method="POST", route="/v1/sessions/{sessionId}/participants",
                 status="201") == 2  # fmt: skip
    assert moved(before, after, requests, method="GET", route="/v1/sessions/{sessionId}", status="200") == 1
    assert moved(before, after, requests, method="GET", route="/v1/sessions/{sessionId}", status="404") == 1
    assert moved(before, after, requests, method="GET", route="unmatched", status="404") == 1
    duration = "codeconnect_http_request_duration_seconds_count"
    assert moved(before, after, duration, method="POST", route="/v1/sessions/{sessionId}/participants") == 2
    assert moved(before, after, "codeconnect_http_request_duration_seconds_sum", method="POST",
                 route="/v1/sessions") > 0  # fmt: skip
    # The live endpoint is counted by the live layer, not as HTTP requests.
    assert not any("collab" in dict(labels).get("route", "") for _, labels in after.samples)

    # Live: two seated connections while they were open, one edit received and relayed to the other peer.
    assert moved(before, during, "codeconnect_live_connections") == 2
    assert moved(before, after, "codeconnect_live_connections") == 0
    assert moved(before, during, "codeconnect_rooms_loaded") == 1
    assert moved(before, after, "codeconnect_live_updates_received_total", origin="client") == 1
    assert moved(before, after, "codeconnect_live_updates_received_total", origin="server") == 0
    assert moved(before, after, "codeconnect_live_updates_relayed_total") == 1
    assert moved(before, after, "codeconnect_live_closes_total", code="1000") == 2
    assert moved(before, after, "codeconnect_live_closes_total", code="4401") == 1
    assert moved(before, after, "codeconnect_live_closes_total", code="4404") == 1
    assert moved(before, after, "codeconnect_live_slow_readers_dropped_total") == 0
    # The edit, in one group commit.
    assert moved(before, after, "codeconnect_update_log_commit_batch_updates_sum") == 1
    assert moved(before, after, "codeconnect_update_log_commit_duration_seconds_count") >= 1

    # One process, no Redis: no Redis gauge (it would say "down" where there is nothing to reach).
    assert "codeconnect_redis_up" not in after.names()
    # Ids and tokens are invitations and credentials: never in a label.
    for secret in (sid, session["ownerKey"], session["viewerId"], ada["token"], bob["token"]):
        assert secret not in after.text


async def test_the_token_guards_the_metrics(server_factory: ServerFactory) -> None:
    token = "scrape-" + "x" * 40
    server = await server_factory(metrics_token=token)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        missing = await http.get("/metrics")
        assert missing.status_code == 401
        assert missing.json()["error"] == "metrics_token_required"
        assert missing.headers["www-authenticate"].startswith("Bearer")
        for header in (f"Bearer {token}x", "Bearer wrong", f"Basic {token}", token):
            r = await http.get("/metrics", headers={"Authorization": header})
            assert r.status_code == 401, header
            assert set(r.json()) == {"error", "detail"}
            assert r.json()["error"] in ("metrics_token_required", "metrics_token_invalid")
        assert (await http.get("/metrics", headers={"Authorization": "Bearer wrong"})).json()["error"] == (
            "metrics_token_invalid"
        )
        ok = await scrape(http, token)
        # The refusals were counted like any request, under the route's template.
        assert ok.value("codeconnect_http_requests_total", method="GET", route="/metrics", status="401") >= 6
        assert token not in ok.text
        assert (await http.get("/metrics", headers={"Authorization": f"bearer {token}"})).status_code == 200


async def test_metrics_can_be_turned_off(server_factory: ServerFactory) -> None:
    server = await server_factory(metrics=False)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        r = await http.get("/metrics")
        assert r.status_code == 404
        assert r.json()["error"] == "not_found"
        assert "/metrics" not in (await http.get("/openapi.json")).json()["paths"]


async def test_metrics_are_in_the_api_schema(server_factory: ServerFactory) -> None:
    server = await server_factory()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        operation = (await http.get("/openapi.json")).json()["paths"]["/metrics"]["get"]
    assert "text/plain" in operation["responses"]["200"]["content"]
    assert operation["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")


def test_an_empty_token_is_refused(monkeypatch: pytest.MonkeyPatch, clean_env: None) -> None:
    monkeypatch.setenv("CODECONNECT_METRICS_TOKEN", " ")
    with pytest.raises(ValueError, match="METRICS_TOKEN"):
        Settings()


async def test_every_429_of_a_route_is_counted_by_its_template() -> None:
    # What a REST limit raises, whichever domain it belongs to: counted once, by route template and limit.
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/v1/things/{thingId}")
    async def thing(thingId: str) -> None:  # noqa: N803 (the API's spelling)
        raise TooManyRequests("Slow down.", code="things_per_minute", headers={"Retry-After": "3"})

    def count() -> float:
        value = metrics.REGISTRY.get_sample_value(
            "codeconnect_rest_rate_limited_total", {"route": "/v1/things/{thingId}", "limit": "things_per_minute"}
        )
        return value or 0.0

    before = count()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        r = await client.get("/v1/things/secret-id-1")
    assert r.status_code == 429 and r.json()["error"] == "things_per_minute"
    assert count() == before + 1
    metrics.count_rest_rate_limited("/v1/things/{thingId}", "things_per_minute")  # the helper other code calls
    assert count() == before + 2
