"""The state machine's task logic: errors across the Lambda boundary, n split into calls, partial failure.

Provider behaviour is controlled with a fake :class:`~imagemint.domain.ports.ImageProvider`
registered through ``imagemint.adapters.providers.register_provider`` (the seam), never
by patching the steps.
"""

from __future__ import annotations

import io
import json
import threading
import uuid
from typing import Any

import pytest
from PIL import Image

from events import bearer, http_event, invoke, invoke_step, load_event
from imagemint.domain import steps
from imagemint.domain.models import GenerationRequest, Job
from imagemint.domain.ports import ProviderCall, ProviderImage, ProviderResult
from imagemint.errors import (
    ImagemintError,
    InputRefused,
    InsufficientCredits,
    ModerationBlocked,
    ProviderError,
    ProviderTimeout,
    RateLimited,
)
from imagemint.wiring import register_provider

BROKEN_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00not really a png" * 8


def lambda_catch(exc: Exception) -> dict[str, str]:
    """What a Catch puts in ``$.error`` when a Lambda task raised ``exc`` (Lambda's error payload)."""
    name = type(exc).__name__
    return {
        "Error": name,
        "Cause": json.dumps({"errorMessage": str(exc), "errorType": name, "stackTrace": []}),
    }


# --------------------------------------------------------------------------- error_from_step


@pytest.mark.parametrize(
    "exc",
    [
        InputRefused("image: not a PNG", param="image"),
        ProviderTimeout("The provider did not answer in 120 s"),
        RateLimited("Slow down", retry_after=7),
        InsufficientCredits("Insufficient credits", required=15, available=3),
        ModerationBlocked("The prompt was refused"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_error_from_step_reads_our_json_messages(exc):
    wrapped = steps.step_handler(lambda event, context: (_ for _ in ()).throw(exc))
    with pytest.raises(Exception) as raised:
        wrapped({}, None)
    assert steps.error_from_step(lambda_catch(raised.value)) == exc.to_dict()


def test_error_from_step_for_a_lambda_service_exception():
    error = {"Error": "Lambda.ServiceException", "Cause": "Lambda was unable to start the function (503)"}
    assert steps.error_from_step(error) == {
        "code": "internal_error",
        "message": "Pipeline step failed (Lambda.ServiceException)",
    }


def test_error_from_step_for_a_states_timeout():
    out = steps.error_from_step({"Error": "States.Timeout", "Cause": None})
    assert out["code"] == "internal_error" and "States.Timeout" in out["message"]


@pytest.mark.parametrize(
    "error",
    [
        {"Error": "KeyError", "Cause": "not json at all"},
        {"Error": "KeyError", "Cause": "[1, 2, 3]"},
        {"Error": "KeyError", "Cause": json.dumps({"errorMessage": "'job_id'", "errorType": "KeyError"})},
        {"Error": "KeyError", "Cause": json.dumps({"errorMessage": json.dumps({"no": "code"})})},
        {"Error": "KeyError", "Cause": json.dumps({"errorMessage": 42})},
        {"Error": "KeyError", "Cause": {"a": "dict, not a string"}},
        {"Error": None, "Cause": None},
        {},
        None,
    ],
)
def test_error_from_step_for_garbage_is_an_internal_error(error):
    out = steps.error_from_step(error)
    assert out["code"] == "internal_error" and isinstance(out["message"], str) and out["message"]
    assert set(out) == {"code", "message"}


def test_error_from_step_with_an_unknown_code_is_an_internal_error_keeping_the_message():
    cause = json.dumps({"errorMessage": json.dumps({"code": "martian", "message": "odd"})})
    assert steps.error_from_step({"Error": "Martian", "Cause": cause}) == {
        "code": "internal_error",
        "message": "odd",
    }


# --------------------------------------------------------------------------- step_handler


def test_step_handler_raises_an_exception_named_like_the_domain_class():
    @steps.step_handler
    def task(event: dict[str, Any], context: Any = None) -> Any:
        raise ProviderTimeout("too slow", param="model")

    with pytest.raises(Exception) as first:
        task({})
    with pytest.raises(Exception) as second:
        task({})
    assert type(first.value).__name__ == "ProviderTimeout"
    assert not isinstance(first.value, ImagemintError)  # Lambda reports the class name, nothing else
    assert type(first.value) is type(second.value)
    assert json.loads(str(first.value)) == {
        "code": "provider_timeout",
        "message": "too slow",
        "param": "model",
    }


def test_step_handler_lets_other_exceptions_through():
    @steps.step_handler
    def task(event: dict[str, Any], context: Any = None) -> Any:
        return event["missing"]

    with pytest.raises(KeyError):
        task({})


def test_step_handler_returns_the_result():
    assert steps.step_handler(lambda event, context: {"ok": event["x"]})({"x": 1}) == {"ok": 1}


def test_a_warm_up_event_runs_no_step_and_builds_what_the_step_would():
    """GenerateAndWarm sends ``{"warm": true}``: the step does not run, ``warm`` builds its clients once
    per event, and a warm-up that fails still answers (the real call meets the error, not the job)."""
    ran, built = [], []

    @steps.step_handler(warm=lambda: built.append(1))
    def task(event: dict[str, Any], context: Any = None) -> Any:
        ran.append(event)
        return {"ran": True}

    assert task({"warm": True}) == {"warm": True} and built == [1] and ran == []
    assert task({"warm": True, "job_id": "j"}) == {"ran": True}  # only the exact warm-up event is one
    assert steps.step_handler(lambda e, c: {"ran": True})({"warm": True}) == {"warm": True}

    def broken() -> None:
        raise ProviderTimeout("the parameter store is slow")

    assert steps.step_handler(warm=broken)(lambda e, c: None)({"warm": True}) == {
        "warm": True,
        "error": "ProviderTimeout",
    }


@pytest.mark.parametrize("name", ["generate_step", "sign_step", "archive_step", "mint_step", "record_step"])
def test_every_step_function_answers_a_warm_up(deps, name):
    out = invoke_step(name, {"warm": True})
    assert out["warm"] is True and set(out) <= {"warm", "error"}


# --------------------------------------------------------------------------- the step functions


def new_job(deps, request: GenerationRequest, job_id: str | None = None) -> str:
    job_id = job_id or str(uuid.uuid4())
    deps.jobs.create(
        Job(job_id=job_id, account_id=request.account_id, dialect=request.dialect, model=request.model)
    )
    return job_id


def test_generate_and_record_samples_through_their_handlers(deps, account):
    acc, _ = account
    job_id = str(uuid.uuid4())
    payload = load_event("generate_step.json", job_id=job_id, account_id=acc.account_id)
    new_job(deps, GenerationRequest.model_validate(payload["request"]), job_id)
    result = invoke_step("generate_step", payload)
    assert deps.jobs.get(job_id).status == "RUNNING"
    assert result["job_id"] == job_id and len(result["images"]) == 1
    assert deps.images.head(result["images"][0]["key"]) is not None
    state = {"job_id": job_id, "request": payload["request"], "result": result}
    recorded = invoke_step("record_step", {"action": "success", "state": state})
    job = deps.jobs.get(job_id)
    assert job.status == "SUCCEEDED" and job.result == recorded
    assert [t["status"] for t in job.transitions] == ["RUNNING", "SUCCEEDED"]


def test_record_sample_through_its_handler(deps):
    payload = load_event("record_step.json")
    request = GenerationRequest.model_validate(payload["state"]["request"])
    job_id = new_job(deps, request, payload["state"]["job_id"])
    invoke_step("record_step", payload)
    assert deps.jobs.get(job_id).status == "SUCCEEDED"


def test_a_domain_failure_crosses_the_lambda_boundary_and_is_recorded(deps, account):
    """Generate raises InputRefused -> Lambda error named InputRefused -> Catch -> RecordFailure."""
    acc, _ = account
    deps.images.put("inputs/x/0", BROKEN_PNG, "image/png")
    request = GenerationRequest(
        prompt="fix it",
        model="gpt-image-2",
        dialect="openai",
        account_id=acc.account_id,
        references=[{"s3_key": "inputs/x/0", "media_type": "image/png", "name": "image[0]"}],
    )
    job_id = new_job(deps, request)
    with pytest.raises(Exception) as raised:
        invoke_step("generate_step", {"job_id": job_id, "request": request.model_dump(exclude_none=True)})
    assert type(raised.value).__name__ == "InputRefused"
    out = invoke_step(
        "record_step", {"action": "failure", "job_id": job_id, "error": lambda_catch(raised.value)}
    )
    job = deps.jobs.get(job_id)
    assert job.status == "FAILED" and out["error"] == job.error
    assert job.error["code"] == "input_refused" and job.error["param"] == "image[0]"


# --------------------------------------------------------------------------- n split into calls


class FakeProvider:
    """Plain images of the asked size.

    Fails a call whose seed is in ``fail_at`` (the seed of image i is ``seed + i``), or
    the k-th call to arrive when ``k`` is in ``fail_nth`` (for requests without a seed).
    """

    name = "fake"

    def __init__(self) -> None:
        self.fail_at: dict[int, ImagemintError] = {}
        self.fail_nth: dict[int, ImagemintError] = {}
        self.calls: list[ProviderCall] = []
        self._lock = threading.Lock()

    def generate(self, call: ProviderCall) -> ProviderResult:
        with self._lock:
            self.calls.append(call)
            nth = len(self.calls) - 1
        error = self.fail_at.get(call.seed) if call.seed is not None else None
        error = error or self.fail_nth.get(nth)
        if error is not None:
            raise error
        images = []
        for i in range(call.n):
            buf = io.BytesIO()
            Image.new("RGB", (call.width, call.height), ((call.seed or 0) + i, 0, 0)).save(buf, "PNG")
            images.append(ProviderImage(buf.getvalue(), "image/png", call.width, call.height))
        return ProviderResult(
            images=images, model=call.provider_model, prompt_tokens=2, metadata={"provider": "fake"}
        )


@pytest.fixture
def fake() -> Any:
    provider = FakeProvider()
    register_provider("openai", provider)
    register_provider("fal", provider)
    yield provider
    register_provider("openai", None)
    register_provider("fal", None)


# No registry model allows more images than it makes per call (max_n <= max_per_call), so the split
# shows where configuration aliases a model to one that makes fewer per call.
SPLITS = [
    ("dall-e-2=fal-ai/flux/schnell", 6, [4, 2]),
    ("dall-e-2=fal-ai/nano-banana-2", 10, [4, 4, 2]),
    ("dall-e-2=gpt-image-2", 10, [10]),
]


@pytest.mark.parametrize(("aliases", "n", "counts"), SPLITS, ids=[a for a, _, _ in SPLITS])
def test_n_is_split_into_calls_of_at_most_max_per_call(deps, account, fake, aliases, n, counts):
    acc, _ = account
    deps.settings = deps.settings.model_copy(update={"model_aliases": aliases})
    request = GenerationRequest(
        prompt="boats",
        model="dall-e-2",
        n=n,
        size="256x256",
        seed=100,
        dialect="openai",
        account_id=acc.account_id,
    )
    result = steps.generate(deps, new_job(deps, request), request)
    assert sorted(c.n for c in fake.calls) == sorted(counts)
    starts = [sum(counts[:i]) for i in range(len(counts))]
    assert sorted(c.seed for c in fake.calls) == [100 + s for s in starts]
    assert len(result.images) == n and len({img.key for img in result.images}) == n
    assert len({img.sha256 for img in result.images}) == n
    assert result.usage.images == n and result.usage.prompt_tokens == 2 * len(counts)
    assert all(deps.images.head(img.key) is not None for img in result.images)


def test_a_failed_call_keeps_the_others_with_a_warning(deps, account, fake):
    acc, _ = account
    deps.settings = deps.settings.model_copy(update={"model_aliases": "dall-e-2=fal-ai/nano-banana-2"})
    fake.fail_at = {104: ProviderError("upstream 500")}  # the second call (images 4-7)
    request = GenerationRequest(
        prompt="boats",
        model="dall-e-2",
        n=10,
        size="256x256",
        seed=100,
        dialect="openai",
        account_id=acc.account_id,
    )
    result = steps.generate(deps, new_job(deps, request), request)
    assert len(fake.calls) == 3
    assert len(result.images) == 6
    assert [img.key.rsplit("/", 1)[1] for img in result.images] == [f"{i}.png" for i in range(6)]
    assert any("4 of 10 images could not be generated" in w and "upstream 500" in w for w in result.warnings)
    assert result.cost_usd == pytest.approx(6 * 0.08)


def test_what_generate_made_is_on_the_job_before_any_later_step_runs(deps, account, fake):
    """If the execution dies after Generate (before Record), the job still names every image."""
    acc, _ = account
    request = GenerationRequest(
        prompt="keep", model="gpt-image-2", n=2, dialect="openai", account_id=acc.account_id
    )
    job_id = new_job(deps, request)
    result = steps.generate(deps, job_id, request)
    job = deps.jobs.get(job_id)
    assert job.status == "RUNNING"
    assert job.result == result.model_dump(exclude_none=True) and len(job.result["images"]) == 2


def test_a_partial_failure_reaches_the_client_as_fewer_images_and_a_warning(deps, account, fake):
    _, key = account
    deps.settings = deps.settings.model_copy(update={"model_aliases": "dall-e-2=fal-ai/flux/schnell"})
    fake.fail_nth = {1: ProviderError("upstream 500")}
    body = {"model": "dall-e-2", "prompt": "boats", "n": 8, "size": "1024x1024", "response_format": "url"}
    reply = invoke(
        "openai_images", http_event("POST", "/v1/images/generations", headers=bearer(key), json_body=body)
    )
    assert reply.status == 200, reply.text
    out = reply.json
    assert len(out["data"]) == 4 and any("4 of 8 images" in w for w in out["warnings"])
    (job,) = deps.jobs.jobs.values()
    assert job.status == "SUCCEEDED" and len(job.result["images"]) == 4


def test_when_every_call_fails_the_job_fails_with_the_providers_error(deps, account, fake):
    _, key = account
    fake.fail_nth = {0: ProviderError("upstream 500")}
    body = {"model": "gpt-image-2", "prompt": "boats", "n": 2}
    reply = invoke(
        "openai_images", http_event("POST", "/v1/images/generations", headers=bearer(key), json_body=body)
    )
    assert reply.status == 502
    assert reply.json["error"]["code"] == "provider_error" and reply.json["error"]["type"] == "server_error"
    (job,) = deps.jobs.jobs.values()
    assert job.status == "FAILED" and job.error == {"code": "provider_error", "message": "upstream 500"}


def test_a_moderation_block_is_an_explicit_error_not_an_empty_success(deps, account, fake):
    _, key = account
    fake.fail_nth = {0: ModerationBlocked("Your request was rejected by the safety system")}
    body = {"model": "gpt-image-2", "prompt": "something refused"}
    reply = invoke(
        "openai_images", http_event("POST", "/v1/images/generations", headers=bearer(key), json_body=body)
    )
    assert reply.status == 400
    err = reply.json["error"]
    assert (err["type"], err["code"]) == ("image_generation_user_error", "moderation_blocked")


def test_the_registered_provider_is_used_without_the_offline_warning(deps, account, fake):
    acc, _ = account
    request = GenerationRequest(prompt="x", model="gpt-image-2", dialect="openai", account_id=acc.account_id)
    result = steps.generate(deps, new_job(deps, request), request)
    assert result.provider == "fake" and not any("offline" in w for w in result.warnings)


def test_the_end_user_identifiers_are_passed_to_the_provider_and_nothing_else_of_extra(deps, account, fake):
    acc, _ = account
    request = GenerationRequest(
        prompt="x",
        model="gpt-image-2",
        dialect="openai",
        account_id=acc.account_id,
        extra={"user": "u-1", "safety_identifier": "hash-1", "source_note": "kept on the job only"},
    )
    steps.generate(deps, new_job(deps, request), request)
    (call,) = fake.calls
    assert call.extra == {"user": "u-1", "safety_identifier": "hash-1"}
