"""The dashboard's Interruptions table: each interrupted attempt with the minutes and dollars it lost."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.attempts import add_interrupted_attempts

pytestmark = pytest.mark.django_db


def page(client, job) -> str:
    html = client.get(reverse("admin:training_trainingjob_dashboard", args=[job.pk])).content.decode()
    table = html[html.index('<table id="interruptions-table"'):]
    return table[:table.index("</table>")]


def test_each_interruption_is_a_row_with_its_minutes_and_dollars_lost(staff_client, job):
    add_interrupted_attempts(job)

    table = page(staff_client, job)

    assert table.count("<tr><td>") == 1  # the one interrupted attempt; the running one is not a loss
    for text in ("<td>1</td>", "Spot (interruptible)", "H100_PCIE_80GB", "$2.10/h", "1h 00m",
                 "worker gone: pod p-1 no longer exists", "<td>12m 00s</td>", "<td>$0.42</td>"):
        assert text in table, text


def test_a_job_never_interrupted_says_so(staff_client, job):
    assert "No interruptions." in page(staff_client, job)
