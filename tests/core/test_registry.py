"""core.registry: the kind -> label, class, options registry that executors (and, later,
notification channels) share."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.registry import Registry, UnknownKind


class Channel:
    def __init__(self, url: str = "", retries: int = 0) -> None:
        self.url, self.retries = url, retries


class Email(Channel):
    pass


class Slack(Channel):
    pass


def test_register_get_build_and_choices():
    channels = Registry[Channel]("channel")
    channels.register("slack", label="Slack webhook", url="https://hooks.example/x")(Slack)
    channels.register("email")(Email)

    assert channels.kinds() == ["email", "slack"]
    assert channels.choices() == [("email", "email"), ("slack", "Slack webhook")]
    assert channels.label("slack") == "Slack webhook"
    assert "slack" in channels and "sms" not in channels and len(channels) == 2
    assert ["slack"] not in channels and None not in channels  # unhashable or not a str: just not in
    assert [entry.kind for entry in channels] == ["email", "slack"]

    slack = channels.get("slack")
    assert isinstance(slack, Slack) and slack.url == "https://hooks.example/x"
    assert channels.get("slack") is slack  # built once
    fresh = channels.build("slack", retries=3)
    assert fresh is not slack and fresh.url == "https://hooks.example/x" and fresh.retries == 3


def test_the_decorator_returns_the_class_and_re_registering_the_same_class_is_harmless():
    channels = Registry[Channel]("channel")

    @channels.register("email", label="E-mail")
    class Mail(Channel):
        pass

    assert channels.entry("email").cls is Mail
    assert channels.register("email", label="E-mail")(Mail) is Mail


def test_a_kind_taken_by_another_class_is_refused():
    channels = Registry[Channel]("channel")
    channels.register("email")(Email)
    with pytest.raises(ValueError, match="channel kind 'email' is already registered to Email"):
        channels.register("email")(Slack)


@pytest.mark.parametrize("kind", ["", " email", "email ", None])
def test_a_blank_or_padded_kind_is_refused(kind):
    with pytest.raises(ValueError, match="non-empty string"):
        Registry[Channel]("channel").register(kind)


def test_an_unknown_kind_names_the_known_ones():
    channels = Registry[Channel]("channel")
    with pytest.raises(UnknownKind, match="unknown channel 'sms'; known: none"):
        channels.get("sms")
    channels.register("slack")(Slack)
    channels.register("email")(Email)
    with pytest.raises(UnknownKind, match="unknown channel 'sms'; known: email, slack"):
        channels.build("sms")
    assert issubclass(UnknownKind, LookupError)


kinds = st.text(st.characters(categories=["L", "N"], include_characters="_-"), min_size=1, max_size=12)


@given(st.dictionaries(kinds, st.text(max_size=20), max_size=8))
def test_choices_list_every_registered_kind_once_sorted_with_its_label(labels):
    registry = Registry[Channel]("channel")
    for kind, label in labels.items():
        # One class per kind: a kind is one class, a class may not take another's kind.
        registry.register(kind, label=label)(type(f"C_{len(registry)}", (Channel,), {}))
    assert registry.kinds() == sorted(labels)
    assert registry.choices() == [(kind, labels[kind] or kind) for kind in sorted(labels)]
    assert all(kind in registry for kind in labels)
