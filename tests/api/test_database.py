"""The mirror's database: Alembic migrations produce exactly the models' schema (SQLite and a real
PostgreSQL server), the API serves from PostgreSQL through DATABASE_URL, settings read the env."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from conftest import mirror_app, serve
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url
from test_bad_input import QUERY_NAMES, ROUTES, segment

from api.db import make_engine, normalize_url
from api.migrate import downgrade, upgrade
from api.models import api_metadata
from api.settings import ApiSettings


def schema_differences(engine) -> list:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, api_metadata)


def test_sqlite_migrations_match_the_models_and_downgrade(tmp_path):
    engine = make_engine(str(tmp_path / "m.sqlite"))
    upgrade(engine)
    upgrade(engine)  # idempotent
    assert schema_differences(engine) == []
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
    assert set(api_metadata.tables) <= set(inspect(engine).get_table_names())
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}


@pytest.fixture(scope="module")
def api_postgres_url(postgres_url):
    """A database of its own on the session's PostgreSQL server (the oracle tests use `negawatt`)."""
    url = make_url(postgres_url)
    with psycopg.connect(host=url.host, port=url.port, user=url.username, dbname="postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS negawatt_api")
        conn.execute("CREATE DATABASE negawatt_api")
    return url.set(database="negawatt_api").render_as_string(hide_password=False)


def test_postgres_migrations_and_serving(api_postgres_url, monkeypatch):
    from bench.api import populate

    monkeypatch.setenv("DATABASE_URL", api_postgres_url)
    settings = ApiSettings(_env_file=None)
    assert settings.database_url == api_postgres_url  # plain DATABASE_URL is honoured
    engine = make_engine(settings.database_url)
    assert engine.dialect.name == "postgresql"
    upgrade(engine)
    assert schema_differences(engine) == []

    ids = populate(api_postgres_url, devices=200, requests=20)
    url, server, thread = serve(mirror_app(api_postgres_url))
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            stats = client.get("/v1/stats").json()
            assert (stats["devices"], stats["settledRequests"], stats["currentEpoch"]) == (200, 20, 10)
            owner = ids["paid_owners"][0]
            rewards = client.get(f"/v1/rewards/{owner}").json()
            assert rewards["verified"] and rewards["tokens"][0]["proof"]
            page = client.get("/v1/devices", params={"zone": 2, "limit": 3}).json()
            second = client.get("/v1/devices", params={"zone": 2, "limit": 3, "cursor": page["next"]}).json()
            assert page["items"][-1]["address"] < second["items"][0]["address"]
            assert client.get("/v1/requests/5").json()["devices"]
            assert client.get("/v1/zones/2/stats").json()["devices"] == 10
    finally:
        server.should_exit = True
        thread.join(timeout=15)
    downgrade(engine, "base")
    assert "devices" not in inspect(engine).get_table_names()
    engine.dispose()


def test_settings_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NEGAWATT_API_CONFIRMATIONS", "7")
    monkeypatch.setenv("NEGAWATT_API_ORACLES", '["http://a.example/", "https://b.example"]')
    monkeypatch.setenv("NEGAWATT_API_DATABASE_URL", str(tmp_path / "x.sqlite"))
    monkeypatch.setenv("DATABASE_URL", "postgresql://ignored/db")
    settings = ApiSettings(_env_file=None)
    assert settings.confirmations == 7 and settings.oracles == ["http://a.example", "https://b.example"]
    assert settings.database_url == str(tmp_path / "x.sqlite")  # the prefixed variable wins
    assert ApiSettings(_env_file=None, confirmations=0).confirmations == 0
    with pytest.raises(ValueError):
        ApiSettings(_env_file=None, oracles=["ftp://x"])
    assert normalize_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalize_url("/tmp/a.sqlite") == "sqlite:////tmp/a.sqlite"


@pytest.fixture(scope="module")
def postgres_api(postgres_url):
    """The API served from its own PostgreSQL database with a small synthetic mirror."""
    from bench.api import populate

    url = make_url(postgres_url)
    with psycopg.connect(host=url.host, port=url.port, user=url.username, dbname="postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS negawatt_api_fuzz")
        conn.execute("CREATE DATABASE negawatt_api_fuzz")
    database = url.set(database="negawatt_api_fuzz").render_as_string(hide_password=False)
    populate(database, devices=100, requests=10)
    base, server, thread = serve(mirror_app(database))
    with httpx.Client(base_url=base, timeout=30) as client:
        yield client
    server.should_exit = True
    thread.join(timeout=15)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES), value=segment,
       query=st.dictionaries(st.sampled_from(QUERY_NAMES), st.one_of(segment, st.integers().map(str)), max_size=4))
def test_no_input_causes_a_server_error_on_postgres(postgres_api, route, value, query):
    for response in (postgres_api.get(route.format(quote(value, safe="") or "x")),
                     postgres_api.get(route.split("{")[0].rstrip("/") if "{" in route else route, params=query),
                     postgres_api.get("/v1/devices", params=query), postgres_api.get("/v1/requests", params=query)):
        assert response.status_code < 500, (route, value, query, response.text)
