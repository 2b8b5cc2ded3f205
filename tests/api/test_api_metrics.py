"""Issue 15 #6 on the API: `GET /metrics` in the Prometheus text format, scraped from the running
API on anvil: the indexer's lag, the events it indexed by type, HTTP requests by route and status
with their latency, the open SSE streams and the database's query latency all move."""

from __future__ import annotations

import httpx
from conftest import http, indexed_to_head, wait_for
from prometheus_client.parser import text_string_to_metric_families


def scrape(client: httpx.Client) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics by (name, sorted labels)."""
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_move_with_the_chain_and_the_traffic(chain, start_api, tmp_path):
    url, _app = start_api(chain)
    client = http(url)
    indexed_to_head(client, chain)
    before = scrape(client)
    assert value(before, "negawatt_api_indexer_lag_blocks") == 0
    assert value(before, "negawatt_api_indexed_block") == chain.head()
    assert value(before, "negawatt_api_sse_subscribers") == 0
    registered = value(before, "negawatt_api_events_indexed_total", contract="DeviceRegistry", event="DeviceRegistered")

    chain.register()
    chain.register()
    indexed_to_head(client, chain)
    assert client.get("/v1/requests/999").status_code == 404
    with httpx.Client(base_url=url, timeout=30) as stream_client, stream_client.stream("GET", "/v1/stream") as stream:
        # Hold the line iterator: a dropped one is closed by the garbage collector, and httpx then closes
        # the connection (the server rightly stops counting the stream).
        lines = stream.iter_lines()
        next(lines)
        during = scrape(client)
        assert next(lines) is not None  # still open and served
    wait_for(lambda: value(scrape(client), "negawatt_api_sse_subscribers") == 0, 10, "the closed stream to be uncounted")
    after = scrape(client)

    assert value(during, "negawatt_api_sse_subscribers") == 1
    assert value(after, "negawatt_api_sse_subscribers") == 0
    assert value(after, "negawatt_api_events_indexed_total", contract="DeviceRegistry",
                 event="DeviceRegistered") == registered + 2
    assert value(after, "negawatt_api_indexed_block") == chain.head()
    assert value(after, "negawatt_api_head_block") == chain.head()
    ready = value(after, "negawatt_api_http_requests_total", method="GET", route="/v1/ready", status="200")
    assert ready > value(before, "negawatt_api_http_requests_total", method="GET", route="/v1/ready", status="200")
    assert value(after, "negawatt_api_http_requests_total", method="GET", route="/v1/requests/{request_id}",
                 status="404") == 1
    assert value(after, "negawatt_api_http_request_duration_seconds_count", route="/v1/requests/{request_id}") == 1
    assert value(after, "negawatt_api_http_request_duration_seconds_count", route="/v1/stream") == 0  # not timed
    wait_for(lambda: value(scrape(client), "negawatt_api_http_requests_total", method="GET", route="/v1/stream",
                           status="200") == 1, 10, "the closed stream to be counted")
    assert value(after, "negawatt_api_db_query_duration_seconds_count", statement="SELECT") > value(
        before, "negawatt_api_db_query_duration_seconds_count", statement="SELECT")
    assert value(after, "negawatt_api_db_query_duration_seconds_count", statement="INSERT") > value(
        before, "negawatt_api_db_query_duration_seconds_count", statement="INSERT")

    # the lag: an API that stays 3 blocks behind the head reports 3
    behind_url, _behind = start_api(chain, database=str(tmp_path / "behind.sqlite"), confirmations=3)
    behind = http(behind_url)
    wait_for(lambda: behind.get("/v1/ready").json().get("indexed_block") == chain.head() - 3, 30, "the lagging API")
    assert value(scrape(behind), "negawatt_api_indexer_lag_blocks") == 3
