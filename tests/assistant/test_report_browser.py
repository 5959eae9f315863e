"""`report.html` opened in a real headless Chromium: every plot loads, the sections are there; a screenshot is saved."""

from __future__ import annotations

from assistant.evaluation.report import write_report
from assistant.periods import Period
from tests.helpers import ARTIFACTS, chromium_page, unavailable


def test_the_report_renders_in_chromium(make_manager, settings, tmp_path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright")
    manager = make_manager()
    for question in ("How do I reset my password?", "Do you support Google Home?", "I want to talk to a human"):
        final = list(manager.respond(None, question, channel="web"))[-1]
    manager.record_feedback(final.conversation_id, final.message_id, -1)
    page_path = write_report(settings, Period(), tmp_path / "report", retriever=manager.retriever,
                             store=manager.store)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser, page = chromium_page(playwright)
        try:
            page.goto(page_path.as_uri())
            loaded = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete && i.naturalWidth > 0)")
            headings = page.eval_on_selector_all("h2", "hs => hs.map(h => h.textContent)")
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        finally:
            browser.close()
    assert loaded == [True] * 6
    assert headings == ["Figures", "Plots", "Knowledge gaps", "Latest model comparison", "Latest release gate"]
    text = page_path.read_text(encoding="utf-8")
    assert "Do you support Google Home?" in text and "human_request 1" in text


