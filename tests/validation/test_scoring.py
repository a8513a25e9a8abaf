"""Scoring by people (validation/scoring.py): who may score, the blind order of the emotional-
intelligence replies, what a save stores, an incomplete form, progress, agreement between
evaluators, and people's scores as the summary's headline."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from tests.validation.results import FLAT, GOOD, report, suite_of, worker_results
from validation import sets
from validation.models import ReplyScore, ValidationReply
from validation.scoring import EI_RUBRIC, trained_is_a
from validation.summary import EI_CRITERIA

pytestmark = pytest.mark.django_db

EI, BV = sets.EMOTIONAL_INTELLIGENCE, sets.BRAND_VOICE
# Pieces of the two replies the fixture's worker wrote, as they appear in the page's HTML.
TRAINED_TEXT, BASE_TEXT = GOOD[:40], FLAT[:40]


@pytest.fixture
def validation(job, django_capture_on_commit_callbacks):
    return report(job, worker_results(suite_of(job)), django_capture_on_commit_callbacks)


def qa_user(django_user_model, settings, name: str, *, staff: bool = True):
    user = django_user_model.objects.create_user(name, f"{name}@example.com", f"pw-{name}-123", is_staff=staff)
    user.groups.add(Group.objects.get_or_create(name=settings.VALIDATION_QA_GROUP)[0])
    return user


@pytest.fixture
def quinn(django_user_model, settings):
    return qa_user(django_user_model, settings, "quinn")


@pytest.fixture
def rosa(django_user_model, settings):
    return qa_user(django_user_model, settings, "rosa")


def login(client, user):
    client.force_login(user)
    return client


def overview(validation) -> str:
    return reverse("admin:validation_jobvalidation_score", args=[validation.pk])


def item(validation, benchmark: str, item_id: str) -> str:
    return reverse("admin:validation_jobvalidation_score_item", args=[validation.pk, benchmark, item_id])


def replies(validation, benchmark: str = EI) -> list[ValidationReply]:
    return list(validation.replies.filter(benchmark=benchmark).order_by("position"))


def ei_form(a: int | list[int], b: int | list[int], *, note_a: str = "", note_b: str = "") -> dict[str, str]:
    a = [a] * 3 if isinstance(a, int) else a
    b = [b] * 3 if isinstance(b, int) else b
    data = {f"a-{c}": str(v) for c, v in zip(EI_CRITERIA, a, strict=True)}
    data |= {f"b-{c}": str(v) for c, v in zip(EI_CRITERIA, b, strict=True)}
    return data | {"a-note": note_a, "b-note": note_b}


def bv_keys(validation) -> list[str]:
    return [c["key"] for c in validation.set_of(BV).characteristics]


def first_position(html: str) -> str:
    """Which reply the page shows first (as Reply A): 'trained' or 'base'."""
    trained, base = html.index(TRAINED_TEXT), html.index(BASE_TEXT)
    return "trained" if trained < base else "base"


# --- Access ----------------------------------------------------------------------------------

def test_only_qa_staff_may_score(client, validation, quinn, django_user_model, settings):
    reply = replies(validation)[0]
    urls = [overview(validation), item(validation, EI, reply.item_id), item(validation, BV, replies(validation, BV)[0].item_id)]

    for url in urls:  # anonymous: the admin's login page, coming back here
        response = client.get(url)
        assert response.status_code == 302
        assert response.url.startswith(reverse("admin:login")) and "next=" in response.url

    staff = django_user_model.objects.create_user("stan", "stan@example.com", "pw-stan-123", is_staff=True)
    login(client, staff)
    for url in urls:
        response = client.get(url)
        assert response.status_code == 403
        assert "Scoring the validation replies is for evaluators with the QA role" in response.content.decode()
        assert f"<strong>{settings.VALIDATION_QA_GROUP}</strong> group" in response.content.decode()
    assert client.post(urls[1], ei_form(5, 1)).status_code == 403
    assert not ReplyScore.objects.filter(scorer="people").exists()

    # The permission does as well as the group.
    staff.user_permissions.add(Permission.objects.get(codename="score_replies"))
    staff = django_user_model.objects.get(pk=staff.pk)
    login(client, staff)
    assert client.get(urls[0]).status_code == 200

    # QA without staff: the admin sends them to its login page.
    login(client, qa_user(django_user_model, settings, "nell", staff=False))
    assert client.get(urls[0]).status_code == 302

    login(client, quinn)
    for url in urls:
        assert client.get(url).status_code == 200
    assert client.get(reverse("admin:validation_jobvalidation_score", args=[validation.pk + 1000])).status_code == 404
    assert client.get(reverse("admin:validation_jobvalidation_score", args=["nope"])).status_code == 404
    assert client.get(item(validation, sets.KNOWLEDGE_RETENTION, "kr-001")).status_code == 404
    assert client.get(item(validation, EI, "no-such-item")).status_code == 404


def test_the_validation_page_links_to_scoring(client, validation, staff):
    login(client, staff)
    html = client.get(reverse("admin:validation_jobvalidation_change", args=[validation.pk])).content.decode()
    assert f'href="{overview(validation)}" id="score-link"' in html


# --- Blind -----------------------------------------------------------------------------------

def test_the_blind_order_is_stable_for_an_evaluator_and_differs_between_evaluators(client, validation, quinn, rosa):
    ei = replies(validation)
    quinns = [trained_is_a(quinn.pk, r.pk) for r in ei]
    assert 0 < sum(quinns) < len(ei)  # randomised: some items have the trained reply as A, some as B
    differing = [r for r in ei if trained_is_a(quinn.pk, r.pk) != trained_is_a(rosa.pk, r.pk)]
    assert differing
    reply = differing[0]

    seen = {}
    for user in (quinn, rosa):
        login(client, user)
        first = client.get(item(validation, EI, reply.item_id)).content.decode()
        again = client.get(item(validation, EI, reply.item_id)).content.decode()
        assert first_position(first) == first_position(again)  # stable across reloads
        assert first_position(first) == ("trained" if trained_is_a(user.pk, reply.pk) else "base")
        seen[user.username] = first_position(first)
    assert seen["quinn"] != seen["rosa"]


def test_the_page_never_says_which_reply_is_which(client, validation, quinn):
    login(client, quinn)
    for reply in replies(validation)[:6]:
        html = client.get(item(validation, EI, reply.item_id)).content.decode()
        assert "Reply A" in html and "Reply B" in html
        # Everything the page adds to the admin's frame (its title, breadcrumbs, content, script);
        # the set's own text (the person's words, the points) may say "base salary", nothing else may.
        page = re.search(r"<title>.*?</title>", html, re.S).group(0) + html[html.index('<div class="breadcrumbs">'):
                                                                              html.index('<footer id="footer">')]
        rest = re.sub(r'<section class="box" id="(conversation|good-reply)">.*?</section>', "", page, flags=re.S)
        assert not re.search(r"\b(base|trained|baseline|adapter|fine-?tuned)\b", rest, re.I), re.findall(
            r".{60}\b(?:base|trained)\b.{60}", rest, re.I | re.S)
        names = set(re.findall(r'\sname="([^"]+)"', rest))
        assert names == {"csrfmiddlewaretoken", *(f"{s}-{c}" for s in "ab" for c in EI_CRITERIA), "a-note", "b-note"}
        assert reply.trained_reply[:40] in rest.replace("&#x27;", "'") and reply.base_reply[:40] in rest


def test_saving_stores_each_reply_under_its_own_variant(client, validation, quinn, rosa):
    ei = replies(validation)
    reply = ei[0]
    for user, (a, b) in ((quinn, (5, 2)), (rosa, ([4, 3, 5], 1))):
        login(client, user)
        response = client.post(item(validation, EI, reply.item_id), ei_form(a, b, note_a="warm", note_b="  "))
        assert response.status_code == 302
        assert response.url == item(validation, EI, ei[1].item_id)  # the next item not scored yet
        mine = {s.variant: s for s in ReplyScore.objects.filter(reply=reply, scorer="people", evaluator=user)}
        trained, base = (a, b) if trained_is_a(user.pk, reply.pk) else (b, a)
        as_list = lambda v: [v] * 3 if isinstance(v, int) else v  # noqa: E731
        assert mine["trained"].criteria == dict(zip(EI_CRITERIA, as_list(trained), strict=True))
        assert mine["base"].criteria == dict(zip(EI_CRITERIA, as_list(base), strict=True))
        note_on_a = mine["trained" if trained_is_a(user.pk, reply.pk) else "base"]
        assert note_on_a.note == "warm"

    # Each evaluator keeps their own; saving again updates one's own rows and nobody else's.
    assert ReplyScore.objects.filter(reply=reply, scorer="people").count() == 4
    login(client, quinn)
    client.post(item(validation, EI, reply.item_id), ei_form(3, 3))
    assert ReplyScore.objects.filter(reply=reply, scorer="people").count() == 4
    assert {tuple(s.criteria.values()) for s in ReplyScore.objects.filter(reply=reply, evaluator=quinn)} == {(3, 3, 3)}
    assert ReplyScore.objects.get(reply=reply, evaluator=rosa, variant="base").criteria != {c: 3 for c in EI_CRITERIA}

    # Coming back shows what you gave, A and B as you saw them.
    login(client, rosa)
    html = client.get(item(validation, EI, reply.item_id)).content.decode()
    for field, value in ei_form([4, 3, 5], 1).items():
        if not field.endswith("-note"):
            assert f'name="{field}" value="{value}" checked' in html
    assert ">warm</textarea>" in html and "you scored this item" in html


def test_an_incomplete_form_is_refused_with_what_is_missing_and_nothing_is_stored(client, validation, quinn):
    login(client, quinn)
    reply = replies(validation)[3]
    data = ei_form(4, 2)
    del data["b-clarity"]
    del data["a-appropriateness"]
    data["b-empathy"] = "7"
    response = client.post(item(validation, EI, reply.item_id), data)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Not saved. Give a score from 1 to 5 for Reply A: Appropriateness; Reply B: Empathy, Clarity." in html
    assert not ReplyScore.objects.filter(scorer="people").exists()
    assert 'name="a-empathy" value="4" checked' in html  # what was chosen is kept
    assert html.count('class="criterion missing"') == 3

    bv = replies(validation, BV)[0]
    keys = bv_keys(validation)
    names = {c["key"]: c["name"] for c in validation.set_of(BV).characteristics}
    response = client.post(item(validation, BV, bv.item_id), {f"r-{k}": "4" for k in keys[:-2]})
    assert response.status_code == 200
    assert (f"Not saved. Give a score from 1 to 5 for Reply: {names[keys[-2]]}, {names[keys[-1]]}."
            in response.content.decode().replace("&#x27;", "'"))
    assert not ReplyScore.objects.filter(scorer="people").exists()


# --- Brand voice -----------------------------------------------------------------------------

def test_brand_voice_shows_the_trained_reply_with_every_anchor_and_saves_it(client, validation, quinn):
    login(client, quinn)
    bv = replies(validation, BV)
    html = client.get(item(validation, BV, bv[0].item_id)).content.decode().replace("&#x27;", "'")
    rubric = validation.set_of(BV).characteristics
    assert len(rubric) == 10
    for c in rubric:
        assert c["name"].replace("&", "&amp;") in html
        for anchor in c["anchors"].values():
            assert anchor.replace("&", "&amp;").replace('"', "&quot;") in html
    assert TRAINED_TEXT in html.replace("'", "&#x27;") or GOOD[:30] in html
    assert BASE_TEXT not in html
    assert ">Reply</h2>" in html and "Reply A" not in html
    assert "Item 1 of 30" in html
    prompt = validation.set_of(BV).item(bv[0].item_id)["messages"][-1]["content"]
    assert prompt[:50] in html

    scores = {f"r-{k}": str(1 + i % 5) for i, k in enumerate(bv_keys(validation))}
    response = client.post(item(validation, BV, bv[0].item_id), {**scores, "r-note": "too long"})
    assert response.status_code == 302 and response.url == item(validation, BV, bv[1].item_id)
    saved = ReplyScore.objects.get(reply=bv[0], scorer="people", evaluator=quinn)
    assert saved.variant == "trained" and saved.note == "too long"
    assert saved.criteria == {k: 1 + i % 5 for i, k in enumerate(bv_keys(validation))}
    assert not ReplyScore.objects.filter(reply=bv[0], variant="base").exists()


# --- Progress, agreement, the headline -------------------------------------------------------

def test_progress_and_the_next_item(client, validation, quinn, rosa):
    ei = replies(validation)
    login(client, quinn)
    html = client.get(overview(validation)).content.decode()
    assert html.count(">0 of 50<") == 1 and ">0 of 30<" in html
    assert f'id="start-{EI}" href="{item(validation, EI, ei[0].item_id)}">Start scoring<' in html
    assert "needs two evaluators" in html

    # Items 1 and 3 scored: next is 2; the page says where you are.
    for reply in (ei[0], ei[2]):
        client.post(item(validation, EI, reply.item_id), ei_form(4, 2))
    html = client.get(overview(validation)).content.decode()
    assert ">2 of 50<" in html
    assert f'id="start-{EI}" href="{item(validation, EI, ei[1].item_id)}">Continue scoring<' in html
    page = client.get(item(validation, EI, ei[6].item_id)).content.decode()
    assert "Item 7 of 50" in page and "You have scored 2 of 50" in page
    assert f'id="previous-item" href="{item(validation, EI, ei[5].item_id)}"' in page
    assert f'id="next-item" href="{item(validation, EI, ei[7].item_id)}"' in page
    assert 'id="previous-item"' not in client.get(item(validation, EI, ei[0].item_id)).content.decode()

    # Saving item 3 again goes to the next one not scored after it (4); the last one wraps round (to 2).
    assert client.post(item(validation, EI, ei[2].item_id), ei_form(4, 2)).url == item(validation, EI, ei[3].item_id)
    assert client.post(item(validation, EI, ei[49].item_id), ei_form(4, 2)).url == item(validation, EI, ei[1].item_id)

    # Everything else scored: saving the last unscored item returns to the overview, which says so.
    for reply in ei[3:49]:
        for variant in ("base", "trained"):
            ReplyScore.objects.create(reply=reply, variant=variant, scorer="people", evaluator=quinn,
                                      criteria={c: 3 for c in EI_CRITERIA})
    response = client.post(item(validation, EI, ei[1].item_id), ei_form(4, 2), follow=True)
    assert response.redirect_chain[-1][0] == overview(validation)
    html = response.content.decode()
    assert "You have scored all 50 emotional intelligence items" in html
    assert ">50 of 50<" in html and ">Review your scores<" in html
    # The other evaluator's own progress is untouched.
    login(client, rosa)
    html = client.get(overview(validation)).content.decode()
    assert f'id="start-{EI}" href="{item(validation, EI, ei[0].item_id)}">Start scoring<' in html


def test_agreement_between_two_evaluators_is_shown(client, validation, quinn, rosa):
    ei = replies(validation)

    def give(user, reply, trained: int, base: int) -> None:
        a, b = (trained, base) if trained_is_a(user.pk, reply.pk) else (base, trained)
        login(client, user)
        assert client.post(item(validation, EI, reply.item_id), ei_form(a, b)).status_code == 302

    give(quinn, ei[0], 5, 2)
    html = client.get(overview(validation)).content.decode()
    assert "needs two evaluators" in html
    give(rosa, ei[1], 5, 2)  # two evaluators, no item in common
    html = client.get(overview(validation)).content.decode()
    assert "no reply scored by two evaluators yet" in html
    give(rosa, ei[0], 4, 3)  # within a point on both replies
    give(quinn, ei[1], 2, 5)  # three points apart on both
    html = client.get(overview(validation)).content.decode()
    agreement = re.search(rf'id="agreement-{EI}">(.*?)</div>', html, re.S).group(1)
    assert "<strong>50 % within one point</strong>" in agreement
    assert "over 4 comparisons" in agreement
    assert ">2 of 50<" in html and html.count(">2 of 50<") == 2  # each evaluator's own bar
    assert "needs two evaluators" in re.search(rf'id="agreement-{BV}">(.*?)</div>', html, re.S).group(1)


def test_peoples_scores_become_the_summarys_headline(client, validation, quinn):
    assert validation.summary["benchmarks"][EI]["scorer"].startswith("automatic")
    login(client, quinn)
    for reply in replies(validation)[:3]:
        a, b = (5, 2) if trained_is_a(quinn.pk, reply.pk) else (2, 5)
        client.post(item(validation, EI, reply.item_id), ei_form(a, b))
    bv = replies(validation, BV)[0]
    client.post(item(validation, BV, bv.item_id), {f"r-{k}": "5" for k in bv_keys(validation)})
    validation.refresh_from_db()
    ei = validation.summary["benchmarks"][EI]
    assert ei["scorer"].startswith("people") and ei["scorer"] == "people (1 evaluator)"
    assert ei["base"] == 2.0 and ei["trained"] == 5.0 and ei["value"] == 150.0 and ei["n"] == 3
    brand = validation.summary["benchmarks"][BV]
    assert brand["scorer"].startswith("people") and brand["value"] == 100.0


def test_the_ei_rubric_matches_the_summarys_criteria():
    assert tuple(EI_RUBRIC) == EI_CRITERIA
