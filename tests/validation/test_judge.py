"""The judge client against a local server that speaks the chat-completions API.

Nothing here touches Django or the database; the stand-in is a real HTTP server, so retries,
timeouts and error bodies go through `requests` as they would against a real endpoint.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests

from tests.validation.judge_standin import JudgeStandIn, brand_rule_score, rule_scores
from validation.judge import (
    EI_CRITERIA,
    JudgeClient,
    JudgeConfig,
    JudgeError,
    JudgeMalformedError,
    extract_json_object,
    judge_brand_voice,
    judge_pair,
    judge_pair_both_orders,
    mask_secret,
)

API_KEY = "sk-test-7f3a9c2e5b1d4a6f8e0c"
MODEL = "standin-judge"

SCENARIO = [
    {"role": "user", "content": "I lost my job last month and I can't sleep. The credit card "
                                "bill is due and I'm ashamed to tell my partner."},
]
SCENARIO_WITH_TURNS = [
    {"role": "user", "content": "My dad died and left me $40,000. I feel guilty even thinking "
                                "about what to do with it."},
    {"role": "assistant", "content": "I'm so sorry about your dad. There's no rush at all."},
    {"role": "user", "content": "Should I pay off my car loan with it?"},
]
POINTS = ["Names the shame and the fear before any numbers",
          "Suggests one concrete first step", "Ends with a question"]
SHORT_REPLY = "Make a budget and call the card company."
LONG_REPLY = ("That sounds really heavy, and feeling ashamed is so common when money gets tight. "
              "A first step could be calling the card issuer about a hardship plan. Would it help "
              "to plan what you might say to your partner?")

CHARACTERISTICS = [
    {"key": key, "name": key.replace("_", " ").title(), "description": f"The reply shows {key}.",
     "anchors": {str(level): f"{key} at level {level}" for level in range(1, 6)}}
    for key in ("warmth", "directness", "education_first", "plain_language", "concrete_numbers",
                "no_judgement", "names_the_feeling_first", "one_clear_next_step",
                "referrals_when_needed", "never_promises_returns")
]
BRAND_KEYS = [c["key"] for c in CHARACTERISTICS]

GOOD_PAIR = {"A": {"empathy": 2, "clarity": 3, "appropriateness": 3},
             "B": {"empathy": 4, "clarity": 4, "appropriateness": 5}, "reason": "B is kinder."}

# Wording that would tell the judge which reply is which model.
IDENTITY_WORDS = ("trained", "base model", "baseline", "fine-tuned", "fine tuned", "finetuned",
                  "adapter", "lora")


@pytest.fixture
def judge_api():
    with JudgeStandIn(api_key=API_KEY) as api:
        yield api


@pytest.fixture
def make_client(judge_api):
    clients: list[JudgeClient] = []

    def make(**overrides) -> JudgeClient:
        settings = {"base_url": judge_api.base_url, "model": MODEL, "api_key": API_KEY,
                    "timeout_s": 5.0, "backoff_base_s": 0.01} | overrides
        client = JudgeClient(JudgeConfig(**settings))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def user_turns(body) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "user"]


def assert_temperature_zero(api: JudgeStandIn) -> None:
    assert api.requests, "no request reached the judge"
    for record in api.requests:
        assert record.body["temperature"] == 0
        assert record.body["model"] == MODEL


# --- Both orders ------------------------------------------------------------------------------


def test_both_orders_swap_the_labels_and_position_bias_cancels(judge_api, make_client):
    judge_api.position_bias = 1  # the judge adds 1 to whichever reply is labelled A
    client = make_client()

    verdict = judge_pair_both_orders(client, SCENARIO, POINTS, base_reply=SHORT_REPLY,
                                     trained_reply=LONG_REPLY)

    first, second = (user_turns(b)[0] for b in judge_api.bodies)
    assert len(judge_api.requests) == 2
    assert SHORT_REPLY in first.split("<reply_a>")[1].split("</reply_a>")[0]
    assert LONG_REPLY in first.split("<reply_b>")[1].split("</reply_b>")[0]
    assert LONG_REPLY in second.split("<reply_a>")[1].split("</reply_a>")[0]
    assert SHORT_REPLY in second.split("<reply_b>")[1].split("</reply_b>")[0]
    assert "Reply A" in first and "Reply B" in first

    # Each reply was A once and B once, so each mean is its true score plus half the bias, and
    # the difference between them is exactly what an unbiased judge would see.
    short, long = rule_scores(SHORT_REPLY), rule_scores(LONG_REPLY)
    for criterion in EI_CRITERIA:
        assert verdict.base[criterion] == short[criterion] + 0.5
        assert verdict.trained[criterion] == long[criterion] + 0.5
        assert (verdict.trained[criterion] - verdict.base[criterion]
                == long[criterion] - short[criterion])
    assert verdict.position_bias == 1.0
    assert verdict.trained_mean > verdict.base_mean
    assert verdict.base_first.a == {k: v + 1 for k, v in short.items()}
    assert verdict.trained_first.a == {k: v + 1 for k, v in long.items()}
    assert verdict.scorer == "judge:" + MODEL
    assert verdict.base_first.scorer == verdict.trained_first.scorer == "judge:" + MODEL
    assert verdict.to_dict()["verdicts"]["base_first"]["A"] == verdict.base_first.a
    assert_temperature_zero(judge_api)


def test_an_unbiased_judge_reports_no_position_bias(judge_api, make_client):
    verdict = judge_pair_both_orders(make_client(), SCENARIO, POINTS, SHORT_REPLY, LONG_REPLY)
    assert verdict.position_bias == 0.0
    assert verdict.base == {k: float(v) for k, v in rule_scores(SHORT_REPLY).items()}


def test_the_judge_is_never_told_which_reply_is_which_model(judge_api, make_client):
    client = make_client()
    judge_pair_both_orders(client, SCENARIO_WITH_TURNS, POINTS, SHORT_REPLY, LONG_REPLY)
    judge_brand_voice(client, SCENARIO, LONG_REPLY, CHARACTERISTICS, needs_referral=True)
    judge_api.queue_content("no idea")  # a re-ask must not leak it either
    judge_pair(client, SCENARIO, POINTS, LONG_REPLY, SHORT_REPLY)

    assert len(judge_api.requests) == 5
    for body in judge_api.bodies:
        text = json.dumps(body).lower()
        for word in IDENTITY_WORDS:
            assert word not in text, f"{word!r} was sent to the judge"


def test_the_pair_prompt_presents_the_conversation_the_points_and_the_rubric(judge_api,
                                                                             make_client):
    judge_pair(make_client(), SCENARIO_WITH_TURNS, POINTS, SHORT_REPLY, LONG_REPLY)
    body = judge_api.bodies[0]
    assert body["messages"][0]["role"] == "system"
    prompt = user_turns(body)[0]
    conversation = prompt.split("<conversation>")[1].split("</conversation>")[0]
    assert conversation.index("My dad died") < conversation.index("so sorry about your dad") \
        < conversation.index("car loan")
    assert "[Educator (earlier reply)]" in conversation
    for point in POINTS:
        assert f"- {point}" in prompt
    for criterion in EI_CRITERIA:
        assert f"- {criterion}: 1 = " in prompt
    assert '"A": {"empathy": <1-5>' in prompt and '"reason"' in prompt
    assert "response_format" not in body  # off by default: many compatible servers reject it
    assert body["max_tokens"] > 0


def test_a_conversation_must_end_with_the_persons_message(make_client):
    with pytest.raises(ValueError, match="must end with the person's message"):
        judge_pair(make_client(), SCENARIO_WITH_TURNS[:2], POINTS, SHORT_REPLY, LONG_REPLY)


# --- Retries ----------------------------------------------------------------------------------


def test_429_waits_for_retry_after_then_500_is_retried_then_success(judge_api, make_client):
    judge_api.queue_rate_limit(retry_after=0.3)
    judge_api.queue_server_error(500)
    judge_api.queue_json(GOOD_PAIR)
    client = make_client()

    verdict = judge_pair(client, SCENARIO, POINTS, SHORT_REPLY, LONG_REPLY)

    assert verdict.a == GOOD_PAIR["A"] and verdict.b == GOOD_PAIR["B"]
    assert verdict.reason == "B is kinder."
    assert [r.status for r in judge_api.requests] == [429, 500, 200]
    first, second, third = (r.at for r in judge_api.requests)
    assert second - first >= 0.3  # Retry-After honoured, not the 0.01 s backoff
    assert third - second < 0.25  # a 500 with no Retry-After backs off 0.02 s
    assert client.usage.calls == 1 and client.usage.retries == 2
    assert judge_api.bodies[0] == judge_api.bodies[2]  # a retry resends the same request
    assert_temperature_zero(judge_api)


@pytest.mark.parametrize("status", [408, 409, 429, 502, 503, 504])
def test_transient_statuses_are_retried(judge_api, make_client, status):
    if status == 429:
        judge_api.queue_rate_limit(retry_after=None)
    else:
        judge_api.queue_server_error(status)
    completion = make_client().complete([{"role": "user", "content": "Say {}"}])
    assert completion.attempts == 2
    assert [r.status for r in judge_api.requests] == [status, 200]


def test_retry_after_is_capped(judge_api, make_client):
    judge_api.queue_rate_limit(retry_after=120)
    judge_api.queue_rate_limit(retry_after="Wed, 21 Oct 2099 07:28:00 GMT")
    client = make_client(max_backoff_s=0.05)
    slept: list[float] = []
    client._sleep = slept.append  # watch the waits instead of waiting

    client.complete([{"role": "user", "content": "hello"}])
    assert slept == [0.05, 0.05]


def test_backoff_doubles_and_gives_up_after_max_retries(judge_api, make_client):
    for _ in range(4):
        judge_api.queue_server_error(503)
    client = make_client(max_retries=3)
    slept: list[float] = []
    client._sleep = slept.append

    with pytest.raises(JudgeError) as caught:
        client.complete([{"role": "user", "content": "hello"}])

    assert caught.value.permanent is False
    assert caught.value.status == 503
    assert "after 4 attempts" in str(caught.value) and "HTTP 503" in str(caught.value)
    assert len(judge_api.requests) == 4
    assert slept == pytest.approx([0.01, 0.02, 0.04])
    assert client.usage.failures == 1 and client.usage.calls == 0


@pytest.mark.parametrize("status,message", [
    (400, "Invalid value for 'max_tokens': too large for this model."),
    (403, "You are not allowed to sample from this model"),
    (404, "The model `standin-judge` does not exist or you do not have access to it."),
    (422, "Unprocessable entity"),
])
def test_other_4xx_are_permanent_and_not_retried(judge_api, make_client, status, message):
    judge_api.queue_error(status, message, code="bad_request")
    client = make_client()
    with pytest.raises(JudgeError) as caught:
        judge_pair(client, SCENARIO, POINTS, SHORT_REPLY, LONG_REPLY)
    assert caught.value.permanent is True
    assert caught.value.status == status
    assert message in str(caught.value)  # the endpoint's own words
    assert len(judge_api.requests) == 1
    assert client.usage.failures == 1 and client.usage.retries == 0


def test_a_wrong_key_is_permanent_and_masked(judge_api, make_client):
    wrong = "sk-wrong-key-9999888877776666"
    client = make_client(api_key=wrong)
    with pytest.raises(JudgeError) as caught:
        client.complete([{"role": "user", "content": "hello"}])
    assert caught.value.permanent is True and caught.value.status == 401
    assert wrong not in str(caught.value)  # the stand-in echoed it in full
    assert "Incorrect API key provided: ****6666" in str(caught.value)
    assert len(judge_api.requests) == 1
    assert judge_api.requests[0].headers["Authorization"] == f"Bearer {wrong}"


def test_a_key_echoed_in_an_error_body_is_masked(judge_api, make_client):
    judge_api.queue_error(400, f"Bad request from key {API_KEY}")
    with pytest.raises(JudgeError) as caught:
        make_client().complete([{"role": "user", "content": "hello"}])
    assert API_KEY not in str(caught.value) and API_KEY not in caught.value.message
    assert f"key ****{API_KEY[-4:]}" in str(caught.value)


def test_a_timeout_is_retried(judge_api, make_client):
    judge_api.queue_slow(3.0)
    client = make_client(timeout_s=0.3)
    started = time.monotonic()

    completion = client.complete([{"role": "user", "content": "hello"}])

    assert completion.attempts == 2
    assert len(judge_api.requests) == 2
    assert 0.3 <= time.monotonic() - started < 2.5
    assert client.usage.retries == 1 and client.usage.calls == 1


def test_every_attempt_timing_out_is_a_transient_failure(judge_api, make_client):
    for _ in range(2):
        judge_api.queue_slow(3.0)
    with pytest.raises(JudgeError, match=r"no answer within 0.2 s") as caught:
        make_client(timeout_s=0.2, max_retries=1).complete([{"role": "user", "content": "hi"}])
    assert caught.value.permanent is False


def test_connection_refused_is_retried_then_transient(make_client):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    client = make_client(base_url=f"http://127.0.0.1:{port}/v1", max_retries=2)
    with pytest.raises(JudgeError, match="after 3 attempts; last: connection failed") as caught:
        client.complete([{"role": "user", "content": "hello"}])
    assert caught.value.permanent is False


def test_a_base_url_that_is_not_an_api_is_permanent(judge_api, make_client):
    client = make_client(base_url=judge_api.base_url.removesuffix("/v1"))
    with pytest.raises(JudgeError) as caught:
        client.complete([{"role": "user", "content": "hello"}])
    assert caught.value.permanent is True and caught.value.status == 404
    assert "Invalid URL (POST /chat/completions)" in str(caught.value)


def test_json_mode_sends_response_format_and_a_server_rejecting_it_is_permanent(judge_api,
                                                                                make_client):
    judge_pair(make_client(json_mode=True), SCENARIO, POINTS, SHORT_REPLY, LONG_REPLY)
    assert judge_api.bodies[0]["response_format"] == {"type": "json_object"}
    assert "JSON" in user_turns(judge_api.bodies[0])[0]  # OpenAI requires the word with it

    judge_api.supports_json_mode = False
    with pytest.raises(JudgeError, match="response_format") as caught:
        judge_pair(make_client(json_mode=True), SCENARIO, POINTS, SHORT_REPLY, LONG_REPLY)
    assert caught.value.permanent is True


# --- Malformed answers ------------------------------------------------------------------------


def test_a_malformed_answer_is_asked_again_then_accepted(judge_api, make_client):
    judge_api.queue_content("Reply B is clearly better, it is warmer.", prompt_tokens=900,
                            completion_tokens=9)
    client = make_client()

    verdict = judge_pair(client, SCENARIO, POINTS, SHORT_REPLY, LONG_REPLY)

    assert verdict.b == rule_scores(LONG_REPLY)
    assert verdict.asks == 2
    assert client.usage.reasks == 1 and client.usage.calls == 2
    reask = judge_api.bodies[1]["messages"]
    assert reask[:2] == judge_api.bodies[0]["messages"]
    assert reask[2] == {"role": "assistant", "content": "Reply B is clearly better, it is warmer."}
    assert "no JSON object" in reask[3]["content"]
    # The tokens of the bad answer were billed, so they count.
    assert verdict.prompt_tokens == 900 + judge_api.requests[1].usage["prompt_tokens"]
    assert verdict.completion_tokens == 9 + judge_api.requests[1].usage["completion_tokens"]
    assert client.usage.prompt_tokens == verdict.prompt_tokens
    assert_temperature_zero(judge_api)


def test_malformed_three_times_raises(judge_api, make_client):
    for answer in ("not json", '{"A": {"empathy": 3}}', "```json\n{broken\n```"):
        judge_api.queue_content(answer)
    client = make_client()
    with pytest.raises(JudgeMalformedError) as caught:
        judge_pair(client, SCENARIO, POINTS, SHORT_REPLY, LONG_REPLY)
    assert str(caught.value).startswith("judge answered malformed JSON: ")
    assert "asked 3 times" in str(caught.value)
    assert isinstance(caught.value, JudgeError) and caught.value.permanent is False
    assert len(judge_api.requests) == 3
    assert client.usage.calls == 3 and client.usage.reasks == 2


@pytest.mark.parametrize("bad,problem", [
    ({"A": {"empathy": 6, "clarity": 3, "appropriateness": 3}, "B": GOOD_PAIR["B"]},
     "A.empathy is 6, outside 1 to 5"),
    ({"A": {"empathy": 0, "clarity": 3, "appropriateness": 3}, "B": GOOD_PAIR["B"]},
     "A.empathy is 0, outside 1 to 5"),
    ({"A": GOOD_PAIR["A"], "B": {"empathy": 3.5, "clarity": 3, "appropriateness": 3}},
     "B.empathy is 3.5, not a whole number"),
    ({"A": GOOD_PAIR["A"], "B": {"empathy": True, "clarity": 3, "appropriateness": 3}},
     "B.empathy is True, not a whole number"),
    ({"A": GOOD_PAIR["A"], "B": {"empathy": 3, "clarity": 3}}, 'has no "appropriateness"'),
    ({"A": GOOD_PAIR["A"]}, 'no "B" object'),
])
def test_bad_scores_are_malformed_and_the_judge_is_told_why(judge_api, make_client, bad,
                                                            problem):
    judge_api.queue_json(bad)
    verdict = judge_pair(make_client(), SCENARIO, POINTS, SHORT_REPLY, LONG_REPLY)
    assert verdict.asks == 2
    assert problem in judge_api.bodies[1]["messages"][-1]["content"]


@pytest.mark.parametrize("answer", [
    "```json\n" + json.dumps(GOOD_PAIR) + "\n```",
    "Here is my verdict:\n" + json.dumps(GOOD_PAIR) + "\nI hope this helps.",
    "<think>A is {short}; B is better.</think>" + json.dumps(GOOD_PAIR),
    json.dumps({"reply_a": GOOD_PAIR["A"], "Reply B": {"Empathy": "4", "Clarity": 4.0,
                                                        "Appropriateness": 5}}),
])
def test_answers_a_robust_reader_accepts_first_time(judge_api, make_client, answer):
    judge_api.queue_content(answer)
    verdict = judge_pair(make_client(), SCENARIO, POINTS, SHORT_REPLY, LONG_REPLY)
    assert verdict.asks == 1
    assert verdict.a == GOOD_PAIR["A"] and verdict.b == GOOD_PAIR["B"]


def test_extract_json_object_takes_the_first_object():
    assert extract_json_object('x {"a": {"b": "}"}} y {"c": 1}') == {"a": {"b": "}"}}
    assert extract_json_object('[1, 2] then {"ok": true}') == {"ok": True}


# --- Usage and cost ---------------------------------------------------------------------------


def test_tokens_and_cost_accumulate(judge_api, make_client):
    client = make_client(price_per_million_input=2.5, price_per_million_output=10.0)
    judge_api.queue_json(GOOD_PAIR, prompt_tokens=1200, completion_tokens=80)
    judge_api.queue_content("garbage", prompt_tokens=1300, completion_tokens=5)  # still billed
    judge_api.queue_json(GOOD_PAIR, prompt_tokens=1400, completion_tokens=70)
    judge_api.queue_server_error()  # not billed
    judge_api.queue_json({"scores": dict.fromkeys(BRAND_KEYS, 4), "reason": "ok"},
                         prompt_tokens=2000, completion_tokens=150)

    judge_pair_both_orders(client, SCENARIO, POINTS, SHORT_REPLY, LONG_REPLY)
    judge_brand_voice(client, SCENARIO, LONG_REPLY, CHARACTERISTICS, needs_referral=False)

    usage = client.usage
    assert usage.calls == 4
    assert usage.prompt_tokens == 1200 + 1300 + 1400 + 2000
    assert usage.completion_tokens == 80 + 5 + 70 + 150
    assert usage.cost_usd == pytest.approx((5900 * 2.5 + 305 * 10.0) / 1_000_000)
    assert usage.retries == 1 and usage.reasks == 1 and usage.failures == 0
    assert usage.seconds > 0
    assert usage.to_dict()["cost_usd"] == round(usage.cost_usd, 6)


def test_default_prices_record_no_cost(judge_api, make_client):
    client = make_client()
    judge_pair(client, SCENARIO, POINTS, SHORT_REPLY, LONG_REPLY)
    assert client.usage.prompt_tokens == judge_api.requests[0].usage["prompt_tokens"] > 0
    assert client.usage.cost_usd == 0.0


# --- Brand voice ------------------------------------------------------------------------------


def test_brand_voice_scores_every_characteristic_in_one_call(judge_api, make_client):
    client = make_client()
    verdict = judge_brand_voice(client, SCENARIO, LONG_REPLY, CHARACTERISTICS,
                                needs_referral=True)

    assert list(verdict.scores) == BRAND_KEYS
    assert set(verdict.scores.values()) == {brand_rule_score(LONG_REPLY)}
    assert verdict.scorer == "judge:" + MODEL and verdict.asks == 1
    assert len(judge_api.requests) == 1
    prompt = user_turns(judge_api.bodies[0])[0]
    for item in CHARACTERISTICS:
        assert f'<characteristic key="{item["key"]}">' in prompt
        assert item["description"] in prompt
        for level in "12345":
            assert f"{level}: {item['anchors'][level]}" in prompt
    assert "calls for a referral" in prompt
    assert LONG_REPLY in prompt.split("<reply>")[1]
    assert_temperature_zero(judge_api)


def test_brand_voice_tells_the_judge_when_no_referral_is_needed(judge_api, make_client):
    judge_brand_voice(make_client(), SCENARIO, SHORT_REPLY, CHARACTERISTICS,
                      needs_referral=False)
    assert "does not call for a referral" in user_turns(judge_api.bodies[0])[0]


def test_brand_voice_missing_a_key_is_asked_again(judge_api, make_client):
    partial = dict.fromkeys(BRAND_KEYS[:-1], 4)
    judge_api.queue_json({"scores": partial, "reason": "nine of ten"})
    judge_api.queue_json({"scores": partial | {"never_promises_returns": 9}})
    verdict = judge_brand_voice(make_client(), SCENARIO, LONG_REPLY, CHARACTERISTICS,
                                needs_referral=False)
    assert verdict.asks == 3
    assert '"scores" has no "never_promises_returns"' in judge_api.bodies[1]["messages"][-1]["content"]
    assert "scores.never_promises_returns is 9, outside 1 to 5" in \
        judge_api.bodies[2]["messages"][-1]["content"]
    assert list(verdict.scores) == BRAND_KEYS


def test_brand_voice_rejects_a_rubric_with_duplicate_keys(make_client):
    with pytest.raises(ValueError, match="unique key"):
        judge_brand_voice(make_client(), SCENARIO, LONG_REPLY,
                          CHARACTERISTICS + CHARACTERISTICS[:1], needs_referral=False)


# --- Configuration ----------------------------------------------------------------------------


def test_repr_masks_the_key():
    config = JudgeConfig(base_url="https://api.example.com/v1", model="gpt-judge",
                         api_key=API_KEY)
    assert API_KEY not in repr(config) and API_KEY not in str(config)
    assert f"api_key='****{API_KEY[-4:]}'" in repr(config)
    assert API_KEY not in repr(JudgeClient(config, session=requests.Session()))
    assert mask_secret("short") == "****" and mask_secret("") == ""


def test_from_env_returns_none_without_a_judge():
    assert JudgeConfig.from_env({}) is None
    assert JudgeConfig.from_env({"LLM_JUDGE_BASE_URL": "https://api.example.com/v1"}) is None
    assert JudgeConfig.from_env({"LLM_JUDGE_MODEL": "gpt-judge"}) is None
    assert JudgeConfig.from_env({"LLM_JUDGE_BASE_URL": "  ", "LLM_JUDGE_MODEL": "m"}) is None


def test_from_env_reads_every_variable():
    config = JudgeConfig.from_env({
        "LLM_JUDGE_BASE_URL": "https://api.example.com/v1/", "LLM_JUDGE_MODEL": "gpt-judge",
        "LLM_JUDGE_API_KEY": API_KEY, "LLM_JUDGE_TIMEOUT": "12.5",
        "LLM_JUDGE_PRICE_INPUT_PER_M": "0.15", "LLM_JUDGE_PRICE_OUTPUT_PER_M": "0.6",
        "LLM_JUDGE_JSON_MODE": "true",
    })
    assert config == JudgeConfig(base_url="https://api.example.com/v1", model="gpt-judge",
                                 api_key=API_KEY, timeout_s=12.5, price_per_million_input=0.15,
                                 price_per_million_output=0.6, json_mode=True)
    assert config.endpoint == "https://api.example.com/v1/chat/completions"
    assert config.scorer == "judge:gpt-judge"

    minimal = JudgeConfig.from_env({"LLM_JUDGE_BASE_URL": "http://127.0.0.1:11434/v1",
                                    "LLM_JUDGE_MODEL": "llama3"})
    assert (minimal.api_key, minimal.timeout_s, minimal.price_per_million_input,
            minimal.json_mode) == ("", 60.0, 0.0, False)


@pytest.mark.parametrize("name,value", [
    ("LLM_JUDGE_TIMEOUT", "sixty"),
    ("LLM_JUDGE_TIMEOUT", "0"),
    ("LLM_JUDGE_TIMEOUT", "nan"),
    ("LLM_JUDGE_PRICE_INPUT_PER_M", "$0.15"),
    ("LLM_JUDGE_PRICE_OUTPUT_PER_M", "-1"),
    ("LLM_JUDGE_JSON_MODE", "maybe"),
    ("LLM_JUDGE_BASE_URL", "api.example.com/v1"),
])
def test_from_env_names_the_malformed_variable(name, value):
    env = {"LLM_JUDGE_BASE_URL": "https://api.example.com/v1", "LLM_JUDGE_MODEL": "m",
           name: value}
    with pytest.raises(ValueError, match=name):
        JudgeConfig.from_env(env)


def test_no_key_sends_no_authorization_header(make_client, judge_api):
    client = make_client(api_key="")
    with pytest.raises(JudgeError, match="didn't provide an API key"):
        client.complete([{"role": "user", "content": "hello"}])
    assert "Authorization" not in judge_api.requests[0].headers
