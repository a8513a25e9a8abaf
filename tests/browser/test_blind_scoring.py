"""Two QA evaluators in real browsers (separate contexts, so separate sessions) score the same
emotional-intelligence scenario blind, with the keyboard only. Each sees the two replies as
Reply A and Reply B in an order of their own (the item is chosen so that the order differs
between them); both sets of scores are saved under the right variants, and the overview shows
their agreement. One of them then scores a brand-voice reply with the keyboard."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from tests.browser.conftest import SCREENSHOTS
from tests.validation.conftest import job  # noqa: F401  (the job fixture, shared with the validation tests)
from tests.validation.results import GOOD, report, suite_of, worker_results
from validation import sets
from validation.models import ReplyScore
from validation.scoring import trained_is_a

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

EI, BV = sets.EMOTIONAL_INTELLIGENCE, sets.BRAND_VOICE
# What both evaluators make of the replies once they have read them: the kind one is better.
FOR_TRAINED, FOR_BASE = "545", "221"


@pytest.fixture(autouse=True)
def whole_sets(settings):
    """Every item of the sets, whatever scripts/test.sh caps end-to-end jobs to."""
    settings.VALIDATION_MAX_ITEMS = 0


@pytest.fixture
def evaluators(catalogue, django_user_model, settings):
    qa = Group.objects.get_or_create(name=settings.VALIDATION_QA_GROUP)[0]
    users = []
    for name in ("quinn", "rosa"):
        user = django_user_model.objects.create_user(name, f"{name}@example.com", f"pw-{name}-123", is_staff=True,
                                                     first_name=name.capitalize(), last_name="Evaluator")
        user.groups.add(qa)
        users.append(user)
    return users


@pytest.fixture
def second_page(browser, live_server):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    page.goto("about:blank")
    context.close()


def log_in(page, base_url: str, user) -> None:
    page.goto(f"{base_url}{reverse('admin:login')}")
    page.fill("#id_username", user.username)
    page.fill("#id_password", f"pw-{user.username}-123")
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")


def focused(page) -> str:
    return page.evaluate("() => document.activeElement.name || document.activeElement.id")


def test_two_evaluators_score_blind_with_the_keyboard_and_see_their_agreement(
        live_server, page, second_page, screenshot, request, evaluators, job, django_capture_on_commit_callbacks):  # noqa: F811
    validation = report(job, worker_results(suite_of(job)), django_capture_on_commit_callbacks)
    quinn, rosa = evaluators
    replies = list(validation.replies.filter(benchmark=EI).order_by("position"))
    # An item whose order differs between the two (worked out as the server does).
    index, reply = next((i, r) for i, r in enumerate(replies) if trained_is_a(quinn.pk, r.pk) != trained_is_a(rosa.pk, r.pk))
    url = live_server.url + reverse("admin:validation_jobvalidation_score_item", args=[validation.pk, EI, reply.item_id])
    overview = live_server.url + reverse("admin:validation_jobvalidation_score", args=[validation.pk])

    def shot(p, step: str) -> None:
        if p is page:
            screenshot(step)
        else:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            p.screenshot(path=str(SCREENSHOTS / f"{request.node.name}-{step}.png"), full_page=True)

    orders = {}
    for user, p in ((quinn, page), (rosa, second_page)):
        log_in(p, live_server.url, user)
        p.goto(url)
        assert p.locator("#item-position").inner_text() == f"Item {index + 1} of 50"
        assert p.locator("#reply-a h2").inner_text() == "Reply A" and p.locator("#reply-b h2").inner_text() == "Reply B"
        trained_first = p.locator("#reply-a .reply-text").inner_text().startswith(GOOD[:30])
        assert trained_first == trained_is_a(user.pk, reply.pk)
        orders[user.username] = "trained first" if trained_first else "trained second"
        p.reload()  # the same order again
        assert p.locator("#reply-a .reply-text").inner_text().startswith(GOOD[:30]) == trained_first
        shot(p, f"{user.username}-item")

        a, b = (FOR_TRAINED, FOR_BASE) if trained_first else (FOR_BASE, FOR_TRAINED)
        assert focused(p) == "a-empathy"  # ready to type
        if user is quinn:
            # Enter too early: nothing is sent, the message says what is missing, focus goes there.
            p.keyboard.press(a[0])
            p.keyboard.press(a[1])
            assert focused(p) == "a-appropriateness"
            p.keyboard.press("Enter")
            assert p.locator("#missing").inner_text() == (
                "Not saved. Give a score from 1 to 5 for Reply A: Appropriateness; "
                "Reply B: Empathy, Clarity, Appropriateness.")
            assert p.url == url
            shot(p, "quinn-missing")
            p.keyboard.press(a[2])
        else:
            for key in a:
                p.keyboard.press(key)
        assert focused(p) == "b-empathy"
        for key in b:
            p.keyboard.press(key)
        assert focused(p) == "save"
        assert p.locator("#missing").inner_text() == ""
        shot(p, f"{user.username}-scored")
        if user is quinn:
            with p.expect_navigation():
                p.keyboard.press("Enter")
        else:
            # Shift+Tab back into the note on Reply B, write it, Ctrl+Enter saves.
            p.keyboard.press("Shift+Tab")
            assert focused(p) == "b-note"
            p.keyboard.type("Reads like a form letter.")
            with p.expect_navigation():
                p.keyboard.press("Control+Enter")
        next_url = reverse("admin:validation_jobvalidation_score_item",
                           args=[validation.pk, EI, replies[0 if index == 49 else index + 1].item_id])
        assert p.url == live_server.url + next_url
        assert f"Saved item {index + 1} of 50." in p.locator("ul.messagelist").inner_text()

        # K goes back to the scored item, which shows the scores given.
        if index + 1 < 50:
            with p.expect_navigation():
                p.keyboard.press("k")
        else:
            p.goto(url)
        assert p.url == url
        given = p.evaluate("""() => Array.from(document.querySelectorAll("input[type=radio]:checked"))
                                   .map(i => i.name + "=" + i.value)""")
        assert given == [f"a-{c}={v}" for c, v in zip(("empathy", "clarity", "appropriateness"), a, strict=True)] + \
                        [f"b-{c}={v}" for c, v in zip(("empathy", "clarity", "appropriateness"), b, strict=True)]

    assert orders == {"quinn": "trained first", "rosa": "trained second"} or \
        orders == {"quinn": "trained second", "rosa": "trained first"}

    for user in (quinn, rosa):
        scores = {s.variant: s for s in ReplyScore.objects.filter(reply=reply, scorer="people", evaluator=user)}
        assert scores["trained"].criteria == {"empathy": 5, "clarity": 4, "appropriateness": 5}
        assert scores["base"].criteria == {"empathy": 2, "clarity": 2, "appropriateness": 1}
    # Rosa wrote her note on Reply B: the base reply when the trained one came first for her.
    noted = "base" if orders["rosa"] == "trained first" else "trained"
    assert ReplyScore.objects.get(reply=reply, evaluator=rosa, variant=noted).note == "Reads like a form letter."

    page.goto(overview)
    agreement = page.locator(f"#agreement-{EI}").inner_text()
    assert "100 % within one point" in agreement and "over 2 comparisons" in agreement
    rows = page.locator(f"#card-{EI} tr.evaluator").all_inner_texts()
    assert len(rows) == 2 and all("1 of 50" in r for r in rows)
    assert "needs two evaluators" in page.locator(f"#agreement-{BV}").inner_text()
    screenshot("overview")

    # Brand voice, by keyboard: ten characteristics, then Enter.
    with page.expect_navigation():
        page.click(f"#start-{BV}")
    assert page.locator("#item-position").inner_text() == "Item 1 of 30"
    assert page.locator("#reply-r h2").inner_text() == "Reply"
    assert page.locator("#characteristics fieldset.criterion").count() == 10
    assert page.locator("#characteristics .anchor").count() == 50
    screenshot("brand-voice")
    for key in "4545345454":
        page.keyboard.press(key)
    assert focused(page) == "save"
    screenshot("brand-voice-scored")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert re.search(r"/score/brand_voice/[^/]+/$", page.url) and "Item 2 of 30" in page.locator("#item-position").inner_text()
    bv = validation.replies.get(benchmark=BV, position=0)
    saved = ReplyScore.objects.get(reply=bv, scorer="people", evaluator=quinn, variant="trained")
    keys = [c["key"] for c in validation.set_of(BV).characteristics]
    assert saved.criteria == dict(zip(keys, [4, 5, 4, 5, 3, 4, 5, 4, 5, 4], strict=True))
    validation.refresh_from_db()
    assert validation.summary["benchmarks"][EI]["scorer"] == "people (2 evaluators)"
    assert validation.summary["benchmarks"][BV]["scorer"] == "people (1 evaluator)"

    # The admin's dark theme: the chosen scores and the anchors stay legible.
    page.emulate_media(color_scheme="dark")
    page.goto(url)
    assert page.locator("#reply-a .opt:has(input:checked)").count() == 3
    screenshot("dark")
