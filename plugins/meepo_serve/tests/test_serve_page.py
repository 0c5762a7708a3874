"""The status page in a real browser (Debian's chromium driven by Playwright): numbers
shown, plots that move as events flow, the pause button, no request leaving the service."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import TOKEN, Service, append_events, jsonl_pipeline, wait_for, write_config

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium); "
    "the status page is tested in a real browser only")


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox"])
        yield launched
        launched.close()


def plot_svg(page: Any, pipeline: str, kind: str) -> str:
    """The SVG the page shows right now for ``pipeline``'s ``kind`` plot."""
    source = page.locator(f'[data-pipeline="{pipeline}"] .plot-{kind}').get_attribute("src")
    return str(page.evaluate("src => fetch(src).then(r => r.text())", source))


def test_the_status_page_shows_live_numbers_plots_and_pauses(
        tmp_path: Path, serve: Callable[..., Service], browser: Any) -> None:
    source = tmp_path / "orders.in.jsonl"
    append_events(source, 1, 10)
    append_events(tmp_path / "users.in.jsonl", 1, 3)
    config = write_config(tmp_path, {n: jsonl_pipeline(tmp_path, n) for n in ("orders", "users")})
    service = serve(config)
    flowing = threading.Event()
    flowing.set()
    done = threading.Event()

    def write() -> None:
        pk = 11
        while not done.is_set():
            if flowing.is_set():
                append_events(source, pk, 20)
                pk += 20
            time.sleep(0.2)

    writer = threading.Thread(target=write)
    writer.start()
    page = browser.new_page(viewport={"width": 1500, "height": 900})
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    try:
        page.goto(service.url)
        card = page.locator('[data-pipeline="orders"]')
        card.wait_for()
        assert page.locator('[data-pipeline="users"] .events').inner_text() != ""
        wait_for(lambda: page.locator('[data-pipeline="users"] .events').inner_text() == "3")
        first = int(card.locator(".events").inner_text())
        first_plot = plot_svg(page, "orders", "rate")
        time.sleep(5)  # two or more samples later
        shown = int(card.locator(".events").inner_text())
        api = service.status("orders")["events_total"]
        assert first < shown <= api  # the page updated itself, no reload
        assert float(card.locator(".rate1").inner_text()) > 0
        assert card.locator(".state").inner_text() == "running"
        later_plot = wait_for(lambda: (svg := plot_svg(page, "orders", "rate")) and int(
            svg.split('data-points="')[1].split('"')[0]) >= 3 and svg, timeout=10)
        assert later_plot != first_plot
        assert 'data-last="0.000"' not in later_plot  # events/s drawn

        page.fill("#token", TOKEN)
        page.dispatch_event("#token", "change")
        card.locator("button.pause").click()
        wait_for(lambda: card.locator(".state").inner_text() == "paused", timeout=10)
        assert service.status("orders")["state"] == "paused"
        assert "pause done" in page.locator("#message").inner_text()
        screenshot = tmp_path / "status-page.png"
        page.screenshot(path=str(screenshot), full_page=True)
        print(f"screenshot: {screenshot}")
        assert screenshot.stat().st_size > 10_000
        card.locator("button.resume").click()
        wait_for(lambda: card.locator(".state").inner_text() == "running", timeout=10)

        page.fill("#token", "wrong")
        page.dispatch_event("#token", "change")
        card.locator("button.pause").click()
        wait_for(lambda: "refused" in page.locator("#message").inner_text(), timeout=10)
        assert service.status("orders")["state"] == "running"
        assert TOKEN not in page.content()
    finally:
        done.set()
        writer.join()
        page.close()
    assert requests and all(url.startswith(service.url) for url in requests)  # offline
