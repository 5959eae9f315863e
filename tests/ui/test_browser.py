"""The chat and the agent console in a real headless Chromium (Debian's chromium, driven by Playwright), at
1280 px and at 390 px. Each step is saved as a screenshot under test-artifacts/ to be looked at."""

from __future__ import annotations

import json
import re

import pytest

from tests.helpers import ARTIFACTS, chromium_page, unavailable
from tests.ui.test_chat_server import serve
from ui.chat import SAVED_KEY

AGENT_KEY = "k-agent"


@pytest.fixture
def served_for_browser(make_manager, settings):
    configured = settings.model_copy(update={"agent_keys": [AGENT_KEY], "api_keys": ["k-api"]})
    yield from serve(make_manager, configured)


@pytest.fixture
def playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright")
    with sync_playwright() as running:
        yield running


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def ask(page, question: str) -> None:
    """Type a question and send it with the Send button inside the input; wait for its sources to appear."""
    answers = page.locator(".bot-row").count()
    page.get_by_placeholder("Type your question…").fill(question)
    page.get_by_role("button", name="Send").click()
    page.wait_for_function(f"document.querySelectorAll('.bot-row').length > {answers}")
    page.locator(".bot-row").last.get_by_text("Sources").wait_for(timeout=20_000)


@pytest.mark.parametrize("width", [1280, 390])
def test_customer_and_agent_in_the_browser(served_for_browser, playwright, width):
    url, manager = served_for_browser
    browser, customer = chromium_page(playwright, width)
    try:
        customer.goto(url)
        customer.get_by_text("How can we help?").wait_for()
        suggestions = customer.get_by_role("button", name="How do I reset my password?")
        assert suggestions.is_visible()
        shot(customer, f"{width}-1-empty")

        ask(customer, "How do I reset my password?")
        ask(customer, "How long is the reset link valid?")
        answers = customer.locator(".bot-row")
        assert answers.count() == 2
        last = answers.last.inner_text()
        assert "Sources" in last and not re.search(r"\[\d\]", last)  # no raw citation markers
        starts = answers.last.locator("ol").evaluate_all("lists => lists.map(l => l.start)")
        assert starts and set(starts) == {1}  # the one source is numbered 1, not by its place in the prompt
        shot(customer, f"{width}-2-answers")

        customer.locator(".message-buttons").last.get_by_role("button", name="Like", exact=True).click()
        customer.get_by_text("Thanks for your feedback").wait_for()
        stored = manager.store.messages(manager.store.conversations(1)[0].id)
        assert manager.store.ratings([stored[-1].id]) == {stored[-1].id: 1}
        shot(customer, f"{width}-3-feedback")

        customer.get_by_role("button", name="Talk to a human").click()
        customer.get_by_text(re.compile(r"ticket #\d+")).last.wait_for()
        # the thumbs given before stay lit after the next message
        assert customer.locator(".message-buttons button[aria-label='Like']").first.is_visible()
        shot(customer, f"{width}-4-handoff")

        agent_context = browser.new_context(viewport={"width": width, "height": 900})
        agent = agent_context.new_page()
        agent.goto(url + "agent")  # no trailing slash: redirected
        agent.get_by_label("username").fill("ana")
        agent.get_by_label("password").fill(AGENT_KEY)
        agent.get_by_role("button", name="Login").click()
        agent.get_by_text("agent console").first.wait_for()
        shot(agent, f"{width}-5-agent-signed-in")
        agent.locator(".ticket-queue").get_by_text("Customer wants:").filter(visible=True).first.click()  # row pick
        agent.locator(".transcript").get_by_text("How long is the reset link valid?").wait_for()
        shot(agent, f"{width}-6-agent-picked")
        agent.get_by_role("button", name="Take over").click()
        agent.get_by_text(re.compile(r"Ticket #\d+ is assigned")).wait_for()
        agent.get_by_label("Reply as agent").fill("Hi, this is Ana. The link works for 60 minutes.")
        agent.get_by_role("button", name="Send").click()
        agent.get_by_text("Hi, this is Ana.").last.wait_for()
        shot(agent, f"{width}-7-agent-replied")

        customer.get_by_text("Ana from our support team has joined").wait_for(timeout=10_000)
        customer.get_by_text("Hi, this is Ana. The link works for 60 minutes.").wait_for(timeout=10_000)
        agent_message = customer.locator(".from-agent").last
        assert agent_message.is_visible()
        shot(customer, f"{width}-8-customer-sees-agent")
        customer.get_by_placeholder("Type your question…").fill("Thanks! Can I also change my email?")
        customer.get_by_role("button", name="Send").click()
        # the agent's open transcript shows it by itself, without a click
        agent.locator(".transcript").get_by_text("Can I also change my email?").wait_for(timeout=10_000)

        agent.once("dialog", lambda dialog: dialog.accept())
        agent.get_by_role("button", name="Resolve…").click()
        agent.get_by_text(re.compile(r"Ticket #\d+ is resolved")).wait_for()
        customer.get_by_text(re.compile(r"Ticket #\d+ is resolved")).wait_for(timeout=10_000)
        shot(customer, f"{width}-9-resolved")
        agent_context.close()

        customer.locator(".chat-window").get_by_role("button", name="Clear").click()  # a new conversation
        customer.get_by_text("How can we help?").wait_for()
        assert customer.evaluate(f"localStorage.getItem({json.dumps(SAVED_KEY)})") is None
        customer.reload()  # at once: the browser already forgot the old conversation
        customer.get_by_text("How can we help?").wait_for()
        assert customer.locator(".bot-row").count() == 0  # the cleared conversation does not come back
    finally:
        browser.close()


def test_closing_the_tab_stops_the_generation(make_manager, settings, playwright):
    """A customer who closes the tab mid-answer frees the model for the next one (the API does the same on
    disconnect)."""
    import time

    import httpx

    from tests.assistant.test_generation_worker import SlowGenerator

    slow = SlowGenerator(delay=1.0)  # one word a second: the turn would run on for many seconds
    configured = settings.model_copy(update={"generation_slots": 1})
    running = serve(make_manager, configured, generator=slow)
    url, _ = next(running)
    browser, page = chromium_page(playwright)
    try:
        page.goto(url)
        box = page.get_by_placeholder("Type your question…")
        box.fill("How do I reset my password if the app says the email address I typed is unknown to Northwind "
                 "and I no longer remember which address I used when I first signed up for the account?")
        page.get_by_role("button", name="Send").click()
        deadline = time.time() + 20
        while slow.running == 0 and time.time() < deadline:
            time.sleep(0.05)
        assert slow.running == 1, "the answer never started"
        page.close()
        closed = time.time()
        while slow.running and time.time() - closed < 2.5:
            time.sleep(0.05)
        assert slow.running == 0, "the generation went on after the tab closed"
        assert httpx.get(url + "healthz").json()["generation"]["running"] == 0
    finally:
        browser.close()
        next(running, None)
