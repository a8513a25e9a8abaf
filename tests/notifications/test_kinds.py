"""The pure rules: which event is which kind, the cost alert's threshold, the retry backoff."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from notifications.channels import retry_after_seconds
from notifications.kinds import (
    CRITICAL_ANOMALIES,
    URGENT,
    EventFacts,
    Kind,
    backoff_seconds,
    cost_overrun,
    kind_of,
)


def test_status_changes_map_to_their_kinds():
    for status, kind in [("completed", Kind.COMPLETED), ("failed", Kind.FAILED), ("cancelled", Kind.CANCELLED),
                         ("recovering", Kind.INTERRUPTED)]:
        assert kind_of(EventFacts("status_changed", new_status=status)) == kind
    for status in ("queued", "provisioning", "training", "validating"):
        assert kind_of(EventFacts("status_changed", new_status=status)) is None


def test_validation_finished_is_its_own_kind():
    assert kind_of(EventFacts("validation_finished")) == Kind.VALIDATION_FINISHED
    assert kind_of(EventFacts("validation_results")) is None  # the worker's report: finished only once scored


def test_anomalies_split_into_critical_and_normal():
    for kind in ("divergence", "spike"):
        assert kind_of(EventFacts("anomaly", anomaly_kind=kind)) == Kind.ANOMALY_CRITICAL
    for kind in ("new_best", "overfitting", "plateau", "stall"):
        assert kind_of(EventFacts("anomaly", anomaly_kind=kind, severity="warning")) == Kind.ANOMALY
    assert kind_of(EventFacts("anomaly", anomaly_kind="anything", severity="critical")) == Kind.ANOMALY_CRITICAL
    assert Kind.ANOMALY_CRITICAL in URGENT and Kind.FAILED in URGENT and Kind.COMPLETED not in URGENT
    assert {"divergence", "spike"} <= CRITICAL_ANOMALIES


@given(st.sampled_from(["metrics", "heartbeat", "stage_changed", "checkpoint_saved", "launched", "pod_state"]))
def test_routine_reports_are_nobodys_business(event_type):
    assert kind_of(EventFacts(event_type)) is None


@given(st.integers(min_value=0, max_value=200))
def test_only_the_four_milestones_are_told(percent):
    kind = kind_of(EventFacts("milestone", milestone_percent=percent))
    assert (kind == Kind.MILESTONE) == (percent in (25, 50, 75, 100))


@given(st.floats(0, 1e6, allow_nan=False), st.floats(0, 1e6, allow_nan=False))
def test_the_cost_alert_fires_only_past_twenty_percent_over(actual, estimate):
    assert cost_overrun(actual, estimate) == (estimate > 0 and actual > estimate * 1.2)


def test_the_cost_alert_needs_both_figures():
    assert not cost_overrun(None, 10) and not cost_overrun(10, None) and not cost_overrun(10, 0)


@given(st.integers(1, 60), st.floats(1, 600), st.floats(60, 86400))
def test_backoff_grows_then_caps(attempts, base, cap):
    delay = backoff_seconds(attempts, base=base, cap=cap)
    assert min(base, cap) <= delay <= cap
    assert backoff_seconds(attempts + 1, base=base, cap=cap) >= delay


@given(st.integers(1, 60), st.floats(0.001, 86400))
def test_backoff_never_comes_back_before_retry_after(attempts, retry_after):
    assert backoff_seconds(attempts, retry_after=retry_after) >= min(retry_after, 3600 * 24)


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 30) == 30
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_malformed_urls_are_refused_with_a_reason(settings):
    from notifications.channels import check_outgoing_url

    settings.NOTIFICATIONS_ALLOW_PRIVATE_URLS = False
    for url in ("https://example.com:99999/x", "https://[::1/x", "ftp://example.com/", "not a url"):
        assert check_outgoing_url(url), url
    assert "private or local" in check_outgoing_url("https://127.0.0.1/hook")
    assert "private or local" in check_outgoing_url("https://169.254.169.254/latest/meta-data")
