"""The before/after view: every scenario and prompt with the base and trained replies side by
side, their checks and scores, the validation's headline strip, filtering and sorting by the gap."""

from __future__ import annotations

import html
import re
import uuid

import pytest
from django.test import Client
from django.urls import reverse

from tests.validation.results import FLAT, GOOD, report, suite_of, worker_results
from validation import sets
from validation.models import JobValidation, ReplyScore
from validation.summary import refresh_summary

pytestmark = pytest.mark.django_db


def url(job_or_id, **query) -> str:
    target = job_or_id.pk if hasattr(job_or_id, "pk") else job_or_id
    base = reverse("admin:validation_jobvalidation_compare", args=[target])
    return base + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def article(content: str, benchmark: str, item_id: str) -> str:
    start = content.index(f'id="{benchmark}-{item_id}"')
    return content[start:content.index("</article>", start)]


@pytest.fixture
def validated(job, django_capture_on_commit_callbacks) -> JobValidation:
    return report(job, worker_results(suite_of(job)), django_capture_on_commit_callbacks)


def test_staff_who_may_see_the_job_get_the_page_by_job_or_validation_id_and_others_a_404(
        job, validated, staff, owner, django_user_model):
    assert logged_in(staff).get(url(job)).status_code == 200
    assert logged_in(staff).get(url(validated.pk)).status_code == 200
    # Staff without the permission to view jobs or validations: as if the job did not exist.
    clerk = django_user_model.objects.create_user("clerk", "clerk@example.com", "pw", is_staff=True)
    assert logged_in(clerk).get(url(job)).status_code == 404
    # Outside the admin: sent to log in.
    response = logged_in(owner).get(url(job))
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert logged_in(staff).get(url(uuid.uuid4())).status_code == 404
    assert logged_in(staff).get(url("not-a-job")).status_code == 404


def test_a_staff_member_with_view_permission_only_sees_it(job, validated, django_user_model):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("vera", "vera@example.com", "pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_jobvalidation"))
    assert logged_in(viewer).get(url(job)).status_code == 200


def test_every_item_is_shown_with_both_replies_in_full(job, validated, staff, django_assert_max_num_queries):
    client = logged_in(staff)
    with django_assert_max_num_queries(20):
        response = client.get(url(job))
    content = response.content.decode()
    items = response.context["items"]
    suite = suite_of(job)
    expected = [(sets.EMOTIONAL_INTELLIGENCE, i["id"]) for i in suite[sets.EMOTIONAL_INTELLIGENCE]["items"]]
    expected += [(sets.BRAND_VOICE, i["id"]) for i in suite[sets.BRAND_VOICE]["items"]]
    assert [(i.benchmark, i.id) for i in items] == expected  # scenarios first, each in its set's order
    assert content.count('<article class="vc-item"') == 80
    # Full text, newlines kept (the reply is shown as written, in a pre-wrap block), escaped.
    assert content.count(html.escape(GOOD)) == 80 and content.count(html.escape(FLAT)) == 80
    assert "\n\nCan you list each card&#x27;s balance and rate tonight?" in content
    # The conversation comes first, then the two columns.
    first = suite[sets.EMOTIONAL_INTELLIGENCE]["items"][0]
    block = article(content, sets.EMOTIONAL_INTELLIGENCE, first["id"])
    assert html.escape(first["messages"][-1]["content"]) in block
    assert block.index('vc-conversation') < block.index('vc-head base') < block.index('vc-head trained')
    # The base replies hit the cap (the worker said so); the trained ones did not.
    assert block.count("hit the token cap") == 1
    assert block.index("hit the token cap") < block.index("vc-head trained")


def test_the_strip_has_each_benchmarks_headline(job, validated, staff):
    content = logged_in(staff).get(url(job)).content.decode()
    strip = content[content.index('id="summary-strip"'):content.index("</section>")]
    for key in ("perplexity", sets.EMOTIONAL_INTELLIGENCE, sets.KNOWLEDGE_RETENTION, sets.BRAND_VOICE):
        text = validated.summary["benchmarks"][key]["text"]
        assert f'data-benchmark="{key}"' in strip
        for part in ("base", "trained", "change", "verdict"):
            assert html.escape(text[part]) in strip, (key, part)
    assert "Short of at least one threshold." in strip  # perplexity fails in these results
    assert 'class="vc-cell fail" data-benchmark="perplexity"' in strip


def test_checks_are_marked_in_words_with_not_applicable_where_they_do_not_apply(job, validated, staff):
    response = logged_in(staff).get(url(job, benchmark=sets.EMOTIONAL_INTELLIGENCE))
    content = response.content.decode()
    items = response.context["items"]
    plain = next(i for i in items if not i.needs_referral)
    referral = next(i for i in items if i.needs_referral)
    block = article(content, plain.benchmark, plain.id)
    base, trained = block[:block.index("vc-checks-cell trained")], block[block.index("vc-checks-cell trained"):]
    assert re.search(r'<li class="missed"[^>]*><span class="mark">✗</span>Names the feeling first', base)
    assert re.search(r'<li class="met"[^>]*><span class="mark">✓</span>Names the feeling first', trained)
    assert re.search(r'<li class="met"[^>]*><span class="mark">✓</span>Ends with one question or next step', trained)
    assert re.search(r'<li class="na"[^>]*><span class="mark">n/a</span>Refers to professional or crisis help', trained)
    referral_block = article(content, referral.benchmark, referral.id)
    assert "Needs a referral" in referral_block
    assert re.search(r'<li class="met"[^>]*><span class="mark">✓</span>Refers to professional or crisis help',
                     referral_block)


def test_scores_by_scorer_people_with_their_count_the_judge_and_automatic(job, validated, staff, owner, teammate):
    reply = validated.replies.get(benchmark=sets.EMOTIONAL_INTELLIGENCE, position=2)
    for person, base, trained in ((owner, 2, 5), (teammate, 3, 4)):
        ReplyScore.objects.create(reply=reply, variant="base", scorer="people", evaluator=person,
                                  criteria={"empathy": base, "clarity": 3, "appropriateness": base})
        ReplyScore.objects.create(reply=reply, variant="trained", scorer="people", evaluator=person,
                                  criteria={"empathy": trained, "clarity": 4, "appropriateness": trained})
    ReplyScore.objects.create(reply=reply, variant="trained", scorer="judge:stand-in", criteria={
        "empathy": 4.5, "clarity": 4, "appropriateness": 5})
    refresh_summary(validated)
    content = logged_in(staff).get(url(job)).content.decode()
    block = article(content, sets.EMOTIONAL_INTELLIGENCE, reply.item_id)
    trained = block[block.index("vc-scores-cell trained"):]
    assert "People · 2 evaluators" in trained and "mean 4.33 / 5" in trained
    assert re.search(r"<td>Empathy</td><td class=\"num\">4.5</td><td class=\"n\">n = 2</td>", trained)
    assert "Judge · stand-in" in trained
    assert "Checks met</td><td class=\"num\">" in trained
    assert "Reference reply&#x27;s perplexity (lower is better)" in trained
    # People scored both: the gap is theirs, on 1-5.
    assert "Trained − base: +1.67 of 5 <small>by people (2 evaluators)</small>" in block
    # Brand voice: people and the judge score the trained replies only, and the page says so.
    voice = article(content, sets.BRAND_VOICE, validated.replies.filter(benchmark=sets.BRAND_VOICE).first().item_id)
    assert "People and the judge score brand voice on the trained replies only." in voice


def test_the_benchmark_filter(job, validated, staff):
    client = logged_in(staff)
    voice = client.get(url(job, benchmark=sets.BRAND_VOICE)).context["items"]
    assert len(voice) == 30 and {i.benchmark for i in voice} == {sets.BRAND_VOICE}
    assert [i.position for i in voice] == list(range(1, 31))
    assert len(client.get(url(job, benchmark="nonsense")).context["items"]) == 80


def test_sorting_by_the_gap_best_or_worst_first(job, staff, owner, django_capture_on_commit_callbacks):
    results = worker_results(suite_of(job))
    ei = results[sets.EMOTIONAL_INTELLIGENCE]["items"]
    for item in ei:  # no difference anywhere ...
        item["base"]["reply"] = GOOD
    ei[5]["base"]["reply"] = FLAT  # ... but here, by the checks, all of them
    ei[9]["base"]["reply"], ei[9]["trained"]["reply"] = GOOD, FLAT  # a regression
    validation = report(job, results, django_capture_on_commit_callbacks)
    rated = validation.replies.get(benchmark=sets.EMOTIONAL_INTELLIGENCE, item_id=ei[7]["id"])
    ReplyScore.objects.create(reply=rated, variant="base", scorer="people", evaluator=owner,
                              criteria={"empathy": 2, "clarity": 3, "appropriateness": 2})
    ReplyScore.objects.create(reply=rated, variant="trained", scorer="people", evaluator=owner,
                              criteria={"empathy": 4, "clarity": 4, "appropriateness": 5})
    client = logged_in(staff)

    best = client.get(url(job, benchmark=sets.EMOTIONAL_INTELLIGENCE, sort="best")).context["items"]
    assert [i.id for i in best[:2]] == [ei[5]["id"], ei[7]["id"]] and best[-1].id == ei[9]["id"]
    assert best[1].difference.scorer == "people (1 evaluator)" and best[1].difference.text == "+2 of 5"
    assert best[0].difference.scorer == "automatic checks" and best[0].difference.text.startswith("+")
    gaps = [i.difference.value for i in best]
    assert gaps == sorted(gaps, reverse=True)

    worst = client.get(url(job, benchmark=sets.EMOTIONAL_INTELLIGENCE, sort="worst")).context["items"]
    assert worst[0].id == ei[9]["id"] and worst[0].difference.state == "down"
    assert worst[-1].id == ei[5]["id"]
    content = client.get(url(job, sort="worst")).content.decode()
    assert '<option value="worst" selected>' in content

    by_position = client.get(url(job, benchmark=sets.EMOTIONAL_INTELLIGENCE)).context["items"]
    assert [i.id for i in by_position] == [i["id"] for i in ei]


def test_a_job_without_results_says_so(job, staff):
    client = logged_in(staff)
    content = client.get(url(job)).content.decode()
    assert "This job has no validation yet" in content
    suite_of(job)  # the first attempt is configured: a pending validation
    content = client.get(url(job)).content.decode()
    assert "Waiting for the worker&#x27;s results." in content and "No replies yet" in content


def test_a_qa_evaluator_still_scoring_is_asked_before_the_replies_are_unblinded(job, validated, django_user_model):
    from django.contrib.auth.models import Group, Permission

    qa = django_user_model.objects.create_user("quill", "quill@example.com", "pw", is_staff=True)
    qa.groups.add(Group.objects.get_or_create(name="QA")[0])
    qa.user_permissions.add(Permission.objects.get(codename="view_jobvalidation"))
    first = validated.replies.filter(benchmark="emotional_intelligence").first()
    for variant in ("base", "trained"):
        ReplyScore.objects.create(reply=first, variant=variant, scorer="people", evaluator=qa,
                                  criteria={"empathy": 3, "clarity": 3, "appropriateness": 3})
    page = logged_in(qa).get(url(job)).content.decode()
    assert "You have scored 1 of 50 scenarios blind." in page and first.trained_reply not in page
    assert 'id="continue-scoring"' in page
    revealed = logged_in(qa).get(url(job, reveal=1)).content.decode()
    assert first.trained_reply.split("\n")[0] in revealed
