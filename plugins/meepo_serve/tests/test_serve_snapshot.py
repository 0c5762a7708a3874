"""A snapshot requested through the API, its progress followed in the status, on a real
SQLite database with the sqlalchemy-outbox source."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import Service, delivered, jsonl_pipeline, wait_for, write_config
from .test_serve_page import CHROMIUM

pytestmark = pytest.mark.integration  # the source comes from meepo-sqlalchemy
sqlalchemy = pytest.importorskip("sqlalchemy", reason="needs meepo-sqlalchemy")
meepo_sqlalchemy = pytest.importorskip("meepo_sqlalchemy", reason="needs meepo-sqlalchemy")

ROWS = 3000


def test_a_snapshot_requested_through_the_api_reports_its_progress(
        tmp_path: Path, serve: Callable[..., Service]) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE product (id INTEGER PRIMARY KEY, name TEXT)")
        conn.exec_driver_sql("INSERT INTO product (id, name) VALUES "
                             + ", ".join(f"({i}, 'p{i}')" for i in range(1, ROWS + 1)))
    meepo_sqlalchemy.create_outbox(engine)
    engine.dispose()
    pipeline = jsonl_pipeline(tmp_path, "shop", snapshot_chunk_size=100)
    pipeline["source"] = {"type": "sqlalchemy-outbox", "url": url, "tables": ["product"],
                          "poll_interval": 0.05}
    service = serve(write_config(tmp_path, {"shop": pipeline}))
    wait_for(lambda: service.status("shop")["state"] == "running")
    with service.authorized() as client:
        answer = client.post("/pipelines/shop/snapshots", json={"tables": ["product"]})
        assert answer.status_code == 202, answer.text + "\n".join(service.lines[-30:])
        assert answer.json()["tables"] == ["product"]
        unknown = client.post("/pipelines/shop/snapshots", json={"tables": ["nosuch"]})
        assert unknown.status_code == 400 and unknown.json()["field"] == "tables"
    seen: list[dict[str, object]] = []

    def finished() -> bool:
        jobs = service.status("shop")["snapshots"]
        seen.extend(jobs)
        return any(job["state"] == "done" for job in jobs)

    wait_for(finished, timeout=120, what="the snapshot to finish")
    running = [job for job in seen if job["state"] == "running"]
    assert running, "no progress was reported while the snapshot ran"
    assert any(0 < int(str(job["rows"])) < ROWS for job in running)
    done = next(job for job in seen if job["state"] == "done")
    assert done["rows"] == ROWS
    assert sorted(delivered(tmp_path / "shop.out.jsonl")) == list(range(1, ROWS + 1))
    print(json.dumps(running[-1]))
    if CHROMIUM is not None:  # the page's progress bar, in a real browser
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(service.url)
            bar = page.locator('[data-pipeline="shop"] .snapshots progress').first
            bar.wait_for()
            assert bar.evaluate("node => node.value") == 1
            text = page.locator('[data-pipeline="shop"] .snapshots').inner_text()
            assert f"done: product: {ROWS:,} of ~{ROWS:,} rows (100%)" in text
            browser.close()
