"""Hostile input: the redaction mask cannot read or move a secret, and bad bytes and
disguised addresses are refused at registration, on both call paths."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from .fakes import Upstream
from .helpers import REPO, Runner, StaticResolver, integration, start_runner
from .stores import sql

MASK = "**********"
STORED_KEY = "sk-stored-secret"
STORED_HEADER = "hdr-stored-secret"
# A key with a header smuggled in; "sk-LEAK" must never come back in any answer.
INJECTED = "sk-LEAK\r\nX-Injected: 1"
TOKEN_URL = "http://127.0.0.1:9/oauth2/token"  # never contacted: nothing here needs a token

Spec = dict[str, Any]


def keyed(upstream: Upstream, **overrides: Any) -> Spec:
    """An api_key integration with a secret header and a visible one."""
    base: Spec = {
        "authentication_type": "api_key",
        "api_key_header": "x-api-key",
        "api_key_value": STORED_KEY,
        "headers": {"X-Secret-Token": STORED_HEADER, "X-Team": "ml"},
    }
    return integration(upstream, **{**base, **overrides})


def oauth(upstream: Upstream, client_id: str = "cid", client_secret: str = "cs", **over: Any):
    """An oauth2 integration; its token URL is never contacted in these tests."""
    token = json.dumps({"client_id": client_id, "client_secret": client_secret})
    base: Spec = {"authentication_type": "oauth2", "oauth2_token_url": TOKEN_URL, "token": token}
    return integration(upstream, **{**base, **over})


def problems(response: httpx.Response) -> dict[str, str]:
    """The refusal's problems by field; the response must be a 422."""
    assert response.status_code == 422, response.text
    return {p["field"]: p["message"] for p in response.json()["error"]["problems"]}


def fetched(runner: Runner, name: str = "acme") -> Spec:
    return runner.http.get(f"/integrations/{name}").json()["integration"]


def stored_rows(config_dir: Path) -> str:
    """Every row of the store the ``runner`` fixture writes to, as text."""
    url = f"sqlite:///{config_dir.parent / 'data' / 'runner.db'}"
    return json.dumps(sql(url, "SELECT * FROM integrations"))


# -- The redaction mask ---------------------------------------------------------------


def test_mask_of_a_header_no_longer_marked_secret_is_refused(
    runner: Runner, upstream: Upstream, config_dir: Path
):
    spec = integration(upstream, headers={"X-Custom": STORED_HEADER}, secret_headers=["X-Custom"])
    assert runner.put("acme", spec).status_code == 201
    sent = fetched(runner)
    sent["secret_headers"] = []
    response = runner.http.put("/integrations/acme", json=sent)
    refused = problems(response)
    assert list(refused) == ["headers.X-Custom"]
    assert "secret_headers" in refused["headers.X-Custom"]
    assert fetched(runner)["headers"]["X-Custom"] == MASK
    for text in (response.text, runner.http.get("/integrations").text, stored_rows(config_dir)):
        assert STORED_HEADER not in text


def test_mask_of_an_init_kwarg_no_longer_marked_secret_is_refused(config_dir: Path):
    spec = {
        "authentication_type": "none",
        "model_properties": [{"name": "offline-echo", "alias": "Echo"}],
        "custom_llm_config": {
            "file_name": "offline_echo.py",
            "class_name": "OfflineEchoHandler",
            "init_kwargs": {"prefix": STORED_KEY},
            "secret_init_kwargs": ["prefix"],
        },
    }
    handlers = {"custom_llms_enabled": True, "custom_llms_directory": REPO / "custom_llms"}
    with start_runner(config_dir, **handlers) as runner:
        assert runner.put("acme", spec).status_code == 201
        sent = fetched(runner)
        sent["custom_llm_config"]["secret_init_kwargs"] = []
        refused = problems(runner.http.put("/integrations/acme", json=sent))
        assert list(refused) == ["custom_llm_config.init_kwargs.prefix"]
        assert "secret_init_kwargs" in refused["custom_llm_config.init_kwargs.prefix"]
        assert fetched(runner)["custom_llm_config"]["init_kwargs"]["prefix"] == MASK
    assert STORED_KEY not in stored_rows(config_dir)


def _new_header(sent: Spec, upstream: Upstream) -> None:
    sent["api_key_header"] = "x-other-key"


def _new_host(sent: Spec, upstream: Upstream) -> None:
    sent["endpoint"] = upstream.url.replace("127.0.0.1", "localhost")


def _new_port(sent: Spec, upstream: Upstream) -> None:
    sent["endpoint"] = "http://127.0.0.1:9/v1"


def _new_scheme(sent: Spec, upstream: Upstream) -> None:
    sent["endpoint"] = upstream.url.replace("http://", "https://")


def _host_header(sent: Spec, upstream: Upstream) -> None:
    sent["headers"]["Host"] = "other.example"


def _no_authentication(sent: Spec, upstream: Upstream) -> None:
    sent["authentication_type"] = "none"
    del sent["api_key_header"], sent["api_key_value"]


@pytest.mark.parametrize(
    "change, changed, masked",
    [
        (_new_header, "api_key_header", {"api_key_value", "headers.X-Secret-Token"}),
        (_new_host, "endpoint", {"api_key_value", "headers.X-Secret-Token"}),
        (_new_port, "endpoint", {"api_key_value", "headers.X-Secret-Token"}),
        (_new_scheme, "endpoint", {"api_key_value", "headers.X-Secret-Token"}),
        (_host_header, "Host header", {"api_key_value", "headers.X-Secret-Token"}),
        (_no_authentication, "authentication_type", {"headers.X-Secret-Token"}),
    ],
    ids=["api_key_header", "endpoint host", "port", "scheme", "Host header", "auth type"],
)
def test_masked_secrets_are_not_sent_somewhere_new(
    runner: Runner,
    upstream: Upstream,
    config_dir: Path,
    change: Callable[[Spec, Upstream], None],
    changed: str,
    masked: set[str],
):
    assert runner.put("acme", keyed(upstream)).status_code == 201
    sent = fetched(runner)
    change(sent, upstream)
    response = runner.http.put("/integrations/acme", json=sent)
    refused = problems(response)
    assert set(refused) == masked
    assert all(changed in message for message in refused.values())
    assert fetched(runner)["api_key_header"] == "x-api-key"
    for text in (response.text, stored_rows(config_dir)):
        assert STORED_KEY not in text and STORED_HEADER not in text
    runner.chat("Model A")
    assert upstream.last.headers["x-api-key"] == STORED_KEY  # the old version still serves


def test_masked_token_is_not_sent_to_a_new_token_url(runner: Runner, upstream: Upstream):
    assert runner.put("acme", oauth(upstream, client_secret="cs-stored")).status_code == 201
    sent = fetched(runner)
    sent["oauth2_token_url"] = "http://127.0.0.1:9/elsewhere/token"
    response = runner.http.put("/integrations/acme", json=sent)
    assert "oauth2_token_url" in problems(response)["token"]
    assert "cs-stored" not in response.text
    assert fetched(runner)["oauth2_token_url"] == TOKEN_URL


def test_masked_init_kwarg_is_not_handed_to_another_handler(config_dir: Path, handler_dir: Path):
    shutil.copy(REPO / "custom_llms" / "offline_echo.py", handler_dir / "offline_echo.py")
    shutil.copy(REPO / "custom_llms" / "offline_echo.py", handler_dir / "other_echo.py")
    config = {
        "file_name": "offline_echo.py",
        "class_name": "OfflineEchoHandler",
        "init_kwargs": {"prefix": STORED_KEY},
        "secret_init_kwargs": ["prefix"],
    }
    spec = {
        "authentication_type": "none",
        "model_properties": [{"name": "offline-echo", "alias": "Echo"}],
        "custom_llm_config": config,
    }
    handlers = {"custom_llms_enabled": True, "custom_llms_directory": handler_dir}
    with start_runner(config_dir, **handlers) as runner:
        assert runner.put("acme", spec).status_code == 201
        sent = fetched(runner)
        sent["custom_llm_config"]["file_name"] = "other_echo.py"
        refused = problems(runner.http.put("/integrations/acme", json=sent))
    assert "handler" in refused["custom_llm_config.init_kwargs.prefix"]


def test_mask_where_no_secret_is_stored_is_refused(runner: Runner, upstream: Upstream):
    assert runner.put("acme", keyed(upstream)).status_code == 201
    sent = fetched(runner)
    sent["model_properties"][0]["name"] = MASK
    sent["model_properties"][0]["supported_parameters"] = ["max_tokens", MASK]
    sent["headers"]["X-Team"] = MASK
    refused = problems(runner.http.put("/integrations/acme", json=sent))
    assert set(refused) == {
        "model_properties[0].name",
        "model_properties[0].supported_parameters[1]",
        "headers.X-Team",
    }


def test_redacted_round_trip_keeps_the_secrets(runner: Runner, upstream: Upstream):
    """Guards the legitimate use of the mask: GET, edit what is not secret, PUT back.
    A new path on the same server and a header name in another case are the same place."""
    assert runner.put("acme", keyed(upstream)).status_code == 201
    sent = fetched(runner)
    sent["headers"]["X-Team"] = "research"
    sent["endpoint"] = upstream.url.removesuffix("/v1") + "/v2"
    sent["api_key_header"] = "X-API-KEY"
    assert runner.http.put("/integrations/acme", json=sent).status_code == 200
    assert runner.chat("Model A").status_code == 200
    received = upstream.last
    assert received.path == "/v2/chat/completions"
    assert (received.headers["x-api-key"], received.headers["x-secret-token"]) == (
        STORED_KEY,
        STORED_HEADER,
    )
    assert received.headers["x-team"] == "research"


@pytest.mark.parametrize("field", ["endpoint", "oauth2_token_url"])
def test_credentials_in_urls_are_refused(runner: Runner, upstream: Upstream, field: str):
    spec = oauth(upstream)
    spec[field] = spec[field].replace("http://", "http://user:url-secret@")
    response = runner.put("acme", spec)
    message = problems(response)[field]
    assert "api_key_header" in message if field == "endpoint" else "token" in message
    assert "url-secret" not in response.text


# -- Bad bytes ------------------------------------------------------------------------


def _models(**model: Any) -> dict[str, Any]:
    return {"model_properties": [{"name": "model-a", "alias": "Model A", **model}]}


BAD_TEXT: dict[str, Callable[[Upstream], Spec]] = {
    "headers.X-Team": lambda up: integration(up, headers={"X-Team": INJECTED}),
    "headers.X-Bad\\rName": lambda up: integration(up, headers={"X-Bad\rName": "v"}),
    "api_key_header": lambda up: keyed(up, api_key_header="x-api-key\n"),
    "api_key_value": lambda up: keyed(up, api_key_value=INJECTED),
    "token.client_id": lambda up: oauth(up, client_id=INJECTED),
    "token.client_secret": lambda up: oauth(up, client_secret=INJECTED),
    "authentication_scope": lambda up: oauth(up, authentication_scope=INJECTED),
    "model_properties[0].name": lambda up: integration(up, **_models(name="model\x00a")),
    "model_properties[0].alias": lambda up: integration(up, **_models(alias="Model\tA")),
    "model_properties[0].supported_parameters[0]": lambda up: integration(
        up, **_models(supported_parameters=["max_tokens\x7f"])
    ),
    "default_model": lambda up: integration(up, default_model="model-a\n"),
    "endpoint": lambda up: integration(up, endpoint=up.url + "/x\r\nX-Injected: 1"),
    "oauth2_token_url": lambda up: oauth(up, oauth2_token_url=TOKEN_URL + "\x85"),
}


@pytest.mark.parametrize("field", BAD_TEXT)
def test_control_characters_are_refused_by_field(runner: Runner, upstream: Upstream, field: str):
    response = runner.put("acme", BAD_TEXT[field](upstream))
    message = problems(response)[field]
    assert "control character U+" in message
    assert "sk-LEAK" not in response.text


def test_control_character_in_the_integration_name_is_refused(runner: Runner, upstream: Upstream):
    response = runner.http.post("/integrations/acme%0A", json=integration(upstream))
    assert "U+000A at position 5" in problems(response)["name"]
    assert runner.http.get("/integrations").json()["data"] == []


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast path", "litellm"])
def test_a_key_with_crlf_is_never_echoed(config_dir: Path, upstream: Upstream, fast_path: bool):
    filed = keyed(upstream, api_key_value=INJECTED, model_properties=[{"name": "f", "alias": "F"}])
    (config_dir / "filed.json").write_text(json.dumps(filed))
    with start_runner(config_dir, fast_path=fast_path) as runner:
        response = runner.put("acme", keyed(upstream, api_key_value=INJECTED))
        assert "U+000D at position 8" in problems(response)["api_key_value"]
        calls = [runner.chat("Model A"), runner.chat("F")]
        health = runner.http.get("/health")
    assert [call.status_code for call in calls] == [404, 404]
    assert "api_key_value: contains the control character U+000D" in health.text
    for text in (response.text, health.text, *(call.text for call in calls)):
        assert "sk-LEAK" not in text
    assert upstream.received == []


@pytest.mark.parametrize("char", ["\u202e", "\u2066", "\u200b", "\u200d", "\ufeff"])
@pytest.mark.parametrize("field", ["alias", "name", "default_model"])
def test_invisible_characters_in_model_names_are_refused(
    runner: Runner, upstream: Upstream, char: str, field: str
):
    spec = integration(upstream, **_models())
    if field == "default_model":
        spec["default_model"] = f"model{char}-a"
        where = "default_model"
    else:
        spec["model_properties"][0][field] = f"Model{char}A"
        where = f"model_properties[0].{field}"
    message = problems(runner.put("acme", spec))[where]
    assert f"invisible formatting character U+{ord(char):04X} at position 6" in message


def test_model_not_found_suggests_aliases_ignoring_case(runner: Runner, upstream: Upstream):
    runner.put("acme", integration(upstream, model_properties=[{"name": "x", "alias": "shared"}]))
    response = runner.chat("SHARED")
    assert response.status_code == 404
    assert "Did you mean 'shared'" in response.json()["error"]["message"]


# -- Disguised addresses --------------------------------------------------------------

DISGUISED_IPV4 = ["0251.0376.0251.0376", "2852039166", "0xa9.0xfe.0xa9.0xfe", "169.254.43518"]
IPV6_CARRYING_METADATA = [
    "64:ff9b::a9fe:a9fe",  # NAT64
    "64:ff9b:1:a9fe:a9:fe00::",  # local-use NAT64, /48 layout
    "2002:a9fe:a9fe::1",  # 6to4
    "2001:0:4136:e378:8000:63bf:5601:5601",  # Teredo, client 169.254.169.254
    "::a9fe:a9fe",  # IPv4-compatible
]


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast path", "litellm"])
@pytest.mark.parametrize("host", DISGUISED_IPV4 + [f"[{a}]" for a in IPV6_CARRYING_METADATA])
def test_disguised_metadata_addresses_are_422_at_registration(
    config_dir: Path, upstream: Upstream, fast_path: bool, host: str
):
    with start_runner(config_dir, fast_path=fast_path) as runner:
        response = runner.put("acme", integration(upstream, endpoint=f"http://{host}/v1"))
        message = problems(response)["endpoint"]
    assert "169.254.169.254" in message
    if not host.startswith("["):
        assert "a.b.c.d" in message


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast path", "litellm"])
def test_a_name_resolving_to_nat64_metadata_is_refused(
    config_dir: Path, upstream: Upstream, fast_path: bool
):
    resolver = StaticResolver({"models.test": "64:ff9b::a9fe:a9fe"})
    with start_runner(config_dir, resolver, fast_path=fast_path) as runner:
        assert runner.put(
            "acme", integration(upstream, endpoint="http://models.test/v1")
        ).is_success
        response = runner.chat("Model A")
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_address_refused"
    assert "carrying 169.254.169.254" in error["message"]
