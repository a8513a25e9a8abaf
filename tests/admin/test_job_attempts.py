"""The job's change page has a table of its attempts, each interruption with its minutes and dollars lost."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.attempts import add_interrupted_attempts
from training.lifecycle import Status

pytestmark = pytest.mark.django_db


def test_the_change_page_shows_each_attempt_and_what_its_interruption_lost(admin_client_for_staff, make_job):
    job = make_job(Status.TRAINING)
    add_interrupted_attempts(job)

    html = admin_client_for_staff.get(reverse("admin:training_trainingjob_change", args=[job.pk])).content.decode()

    table = html[html.index('<table id="attempts-table">'):]
    table = table[:table.index("</table>")]
    assert table.count("<tr>") == 3  # the header and two attempts
    for text in ("Spot (interruptible)", "On-demand", "$2.10/h", "$3.99/h", "1 h 00 min, $2.10", "Interrupted",
                 "worker gone: pod p-1 no longer exists", "12 min lost ($0.42)", "Running", "300"):
        assert text in table, text


def test_a_job_not_launched_says_so(admin_client_for_staff, make_job):
    job = make_job(Status.PENDING)
    html = admin_client_for_staff.get(reverse("admin:training_trainingjob_change", args=[job.pk])).content.decode()
    assert "Not launched yet." in html
