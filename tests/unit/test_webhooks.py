"""Webhooks: Standard Webhooks signatures, per-account secrets, the address rules, one delivery attempt.

No socket is opened: deliveries go to a fake opener, names resolve through a fake resolver.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from pydantic import SecretStr

from imagemint.domain import service, webhooks
from imagemint.domain.models import GenerationRequest
from imagemint.errors import InputRefused
from imagemint.settings import Settings
from imagemint.wiring import Deps

PUBLIC = "93.184.215.14"


class Resolver:
    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[str] = []

    def __call__(self, host: str) -> list[str]:
        self.calls.append(host)
        return list(self.table[host])


class Response:
    def __init__(self, status: int) -> None:
        self.status = status
        self._body = io.BytesIO(b"ok")

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return default

    def read(self, amt: int | None = None) -> bytes:
        return self._body.read(amt)


class Opener:
    """Records each connection and request; answers with the next status in ``statuses``."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Conn:
            def __init__(self, opened: dict[str, Any]) -> None:
                self.opened = opened

            def request(self, method: str, url: str, body: bytes | None = None, headers: Any = None) -> None:
                outer.requests.append(
                    {**self.opened, "method": method, "path": url, "body": body, "headers": headers}
                )

            def getresponse(self) -> Response:
                return Response(outer.statuses.pop(0))

            def close(self) -> None:
                pass

        self._conn = Conn

    def __call__(self, *, scheme: str, address: str, port: int, host: str, timeout: float) -> Any:
        return self._conn({"scheme": scheme, "address": address, "port": port, "host": host})


def test_signature_matches_the_standard_webhooks_reference_vector() -> None:
    # The example of the Standard Webhooks specification (standardwebhooks.com).
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    sig = webhooks.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_verify_checks_signature_timestamp_and_body() -> None:
    secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    body = b'{"type":"job.succeeded"}'
    headers = {"webhook-id": "evt_1", "webhook-timestamp": "1700000000"}
    headers["webhook-signature"] = "v1,bogus " + webhooks.sign(secret, "evt_1", 1700000000, body)
    assert webhooks.verify(secret, headers, body, now=1700000100)  # one of several signatures matches
    assert not webhooks.verify(secret, headers, body + b" ", now=1700000100)
    assert not webhooks.verify(secret, headers, body, now=1700000000 + 301)  # too old: replay
    assert not webhooks.verify(secret, {**headers, "webhook-id": "evt_2"}, body, now=1700000100)
    assert not webhooks.verify(
        "whsec_" + "WFlaV1ZVVFNSUVBPTk1MS0pJSEdGRURDQkE=", headers, body, now=1700000100
    )


def test_secrets_are_per_account_and_derived_from_the_deployment_secret(settings: Settings) -> None:
    a = webhooks.secret_for(settings, "acct-a")
    assert a == webhooks.secret_for(settings, "acct-a") and a.startswith("whsec_")
    assert a != webhooks.secret_for(settings, "acct-b")
    other = settings.model_copy(update={"key_hash_secret": SecretStr("another-deployment")})
    assert a != webhooks.secret_for(other, "acct-a")


@pytest.mark.parametrize(
    ("url", "table", "why"),
    [
        ("https://hooks.example/x", {"hooks.example": ["10.1.2.3"]}, "private"),
        ("https://hooks.example/x", {"hooks.example": [PUBLIC, "169.254.169.254"]}, "metadata"),
        ("https://hooks.example/x", {"hooks.example": ["::1"]}, "loopback"),
        ("https://169.254.169.254/latest/meta-data", {}, "metadata"),
        ("https://metadata.google.internal/x", {}, "not allowed"),
        ("https://127.0.0.1:8080/x", {}, "loopback"),
        ("http://hooks.example/x", {"hooks.example": [PUBLIC]}, "https"),
        ("javascript:alert(1)", {}, "https"),
    ],
)
def test_webhook_urls_refused(settings: Settings, url: str, table: dict[str, list[str]], why: str) -> None:
    with pytest.raises(InputRefused) as err:
        webhooks.check_url(settings, url, resolver=Resolver(table))
    assert err.value.param == "webhook_url" and err.value.status == 400
    assert why in err.value.message


def test_loopback_only_when_the_deployment_allows_it(settings: Settings) -> None:
    local = settings.model_copy(update={"webhook_allow_loopback": True})
    assert webhooks.check_url(local, "http://127.0.0.1:9000/h") == "http://127.0.0.1:9000/h"
    with pytest.raises(InputRefused):  # still no private address
        webhooks.check_url(local, "http://10.0.0.1/h")
    assert webhooks.check_url(
        settings, " https://hooks.example/h ", resolver=Resolver({"hooks.example": [PUBLIC]})
    )


def _job_with_webhook(deps: Deps, account: Any, url: str = "https://hooks.example/h") -> str:
    request = GenerationRequest(
        prompt="p", model="gpt-image-1", dialect="openai", account_id=account[0].account_id
    )
    resolver = Resolver({"hooks.example": [PUBLIC]})
    checked = webhooks.check_url(deps.settings, url, resolver=resolver)
    job = service.submit_async(
        deps, request.model_copy(update={"webhook_url": None}), base_url="https://api.test"
    )
    deps.jobs.update(job.job_id, request={**deps.jobs.get(job.job_id).request, "webhook_url": checked})
    return job.job_id


def test_one_delivery_attempt_signed_and_recorded(deps: Deps, account: Any) -> None:
    job_id = _job_with_webhook(deps, account)
    opener = Opener(500, 204)
    resolver = Resolver({"hooks.example": [PUBLIC]})
    with pytest.raises(webhooks.WebhookFailed):
        webhooks.deliver(deps, job_id, resolver=resolver, opener=opener)
    first = deps.jobs.get(job_id).webhook
    assert first["delivered"] is False and first["attempts"] == 1 and "HTTP 500" in first["last_error"]
    out = webhooks.deliver(deps, job_id, resolver=resolver, opener=opener)
    assert out["delivered"] is True and out["attempts"] == 2 and out["status_code"] == 204
    sent = opener.requests[-1]
    assert sent["method"] == "POST" and sent["address"] == PUBLIC and sent["host"] == "hooks.example"
    assert sent["scheme"] == "https" and sent["path"] == "/h"
    headers = sent["headers"]
    assert headers["Host"] == "hooks.example" and headers["Content-Type"] == "application/json"
    assert webhooks.verify(webhooks.secret_for(deps.settings, account[0].account_id), headers, sent["body"])
    event = json.loads(sent["body"])
    assert event["type"] == "job.succeeded" and headers["webhook-id"] == f"evt_{job_id}_succeeded"
    assert event["data"]["url"] == f"https://api.test/api/jobs/{job_id}"
    assert event["data"]["result"]["image_urls"][0].startswith(f"https://api.test/api/files/{job_id}/")
    assert "request" not in event["data"] and "account_id" not in event["data"]


def test_a_name_that_resolves_to_a_private_address_at_delivery_is_not_dialled(
    deps: Deps, account: Any
) -> None:
    job_id = _job_with_webhook(deps, account)
    opener = Opener(204)
    with pytest.raises(webhooks.WebhookFailed) as err:  # DNS changed since the request was accepted
        webhooks.deliver(deps, job_id, resolver=Resolver({"hooks.example": ["192.168.0.10"]}), opener=opener)
    assert opener.requests == [] and "private" in err.value.message
    assert deps.jobs.get(job_id).webhook["delivered"] is False


def test_redirects_are_not_followed(deps: Deps, account: Any) -> None:
    job_id = _job_with_webhook(deps, account)
    opener = Opener(302)
    with pytest.raises(webhooks.WebhookFailed):
        webhooks.deliver(deps, job_id, resolver=Resolver({"hooks.example": [PUBLIC]}), opener=opener)
    assert len(opener.requests) == 1


def test_prefer_respond_async_answers_202_in_each_dialect(deps: Deps, account: Any, event: Any) -> None:
    from imagemint.api import agentai, content, openai

    key = account[1]
    cases = [
        (content.handle_image, "/api/content/image", {"prompt": "a"}, {"x-api-key": key}),
        (openai.handle, "/v1/images/generations", {"prompt": "a"}, {"authorization": f"Bearer {key}"}),
        (agentai.handle, "/action/generate_image", {"prompt": "a"}, {"authorization": f"Bearer {key}"}),
    ]
    for handler, path, body, headers in cases:
        ev = event("POST", path, json_body=body, headers={**headers, "prefer": "respond-async"})
        resp = handler(ev, deps)
        assert resp.status_code == 202, resp.body
        data = json.loads(resp.body)
        assert resp.headers["Location"] == data["url"] == f"https://api.test/api/jobs/{data['job_id']}"
        job = deps.jobs.get(data["job_id"])
        assert job.mode == "async" and job.status == "SUCCEEDED"  # the inline pipeline ran it at once
