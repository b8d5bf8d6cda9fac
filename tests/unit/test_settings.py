"""Settings: one pydantic model of the environment, checked at cold start."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from imagemint.domain import service
from imagemint.domain.models import GenerationRequest
from imagemint.errors import InternalError
from imagemint.settings import Settings, get_settings, reset_settings
from imagemint_dev.local.template import Template

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {
    "IMAGEMINT_JOBS_TABLE": "jobs",
    "IMAGEMINT_ACCOUNTS_TABLE": "accounts",
    "IMAGEMINT_BUCKET": "bucket",
}


def env(**extra: str) -> dict[str, str]:
    return {**REQUIRED, **{f"IMAGEMINT_{k.upper()}": v for k, v in extra.items()}}


def config_error(environ: dict[str, str]) -> str:
    with pytest.raises(InternalError) as err:
        Settings.from_env(environ)
    assert err.value.status == 500
    return err.value.message


def test_minimal_environment():
    s = Settings.from_env(env())
    assert (s.jobs_table, s.accounts_table, s.bucket) == ("jobs", "accounts", "bucket")
    assert s.region == "us-east-1" and s.url_ttl_s == 24 * 3600 and s.legacy_require_key is False


def test_all_required_variables_missing_are_named():
    message = config_error({})
    for name in REQUIRED:
        assert name in message


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_one_missing_variable_is_named_alone(missing):
    environ = {k: v for k, v in REQUIRED.items() if k != missing}
    message = config_error(environ)
    assert missing in message
    assert all(other not in message for other in REQUIRED if other != missing)


def test_an_empty_value_counts_as_missing():
    assert "IMAGEMINT_BUCKET" in config_error({**REQUIRED, "IMAGEMINT_BUCKET": ""})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("url_ttl_s", "3599"),
        ("url_ttl_s", str(7 * 24 * 3600 + 1)),
        ("url_ttl_s", "an hour"),
        ("archive_mode", "cloud"),
        ("chain_mode", "mainnet"),
        ("legacy_require_key", "maybe"),
        ("max_body_bytes", "0"),
        ("max_input_image_bytes", "-1"),
        ("fetch_timeout_s", "61"),
        ("provider_timeout_s", "0"),
    ],
)
def test_invalid_values_are_internal_errors_naming_the_variable(field, value):
    message = config_error(env(**{field: value}))
    assert f"IMAGEMINT_{field.upper()}" in message
    assert value not in message or value in ("0",)  # names, never values


@pytest.mark.parametrize("ttl", ["3600", str(7 * 24 * 3600)])
def test_url_ttl_bounds_are_inclusive(ttl):
    assert Settings.from_env(env(url_ttl_s=ttl)).url_ttl_s == int(ttl)


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("false", False), ("1", True), ("0", False)])
def test_booleans(raw, value):
    assert Settings.from_env(env(legacy_require_key=raw)).legacy_require_key is value


def test_region_falls_back_to_aws_region():
    assert Settings.from_env({**env(), "AWS_REGION": "eu-west-1"}).region == "eu-west-1"
    assert Settings.from_env({**env(region="us-west-2"), "AWS_REGION": "eu-west-1"}).region == "us-west-2"


def test_public_base_url_loses_its_trailing_slash():
    assert Settings.from_env(env(public_base_url="https://api.example.com/")).public_base_url == (
        "https://api.example.com"
    )


def test_secrets_are_not_shown():
    s = Settings.from_env(env(key_hash_secret="hunter2-hash-secret", openai_api_key="sk-hidden"))
    assert "hunter2-hash-secret" not in repr(s) and "sk-hidden" not in str(s)
    assert s.key_hash_secret is not None and s.key_hash_secret.get_secret_value() == "hunter2-hash-secret"


def test_settings_are_frozen():
    s = Settings.from_env(env())
    with pytest.raises(ValidationError):
        s.bucket = "other"  # type: ignore[misc]


# --------------------------------------------------------------------------- aliases


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("", {}),
        ("dall-e-2=gpt-image-1", {"dall-e-2": "gpt-image-1"}),
        (
            " dall-e-2 = gpt-image-1 , dall-e-3=gpt-image-1 ",
            {"dall-e-2": "gpt-image-1", "dall-e-3": "gpt-image-1"},
        ),
        ("dall-e-3=gpt-image-1,,garbage,", {"dall-e-3": "gpt-image-1"}),
        ("a=b=c", {"a": "b=c"}),
    ],
)
def test_aliases_parsing(raw, parsed):
    assert Settings.from_env(env(model_aliases=raw)).aliases() == parsed


def test_configured_aliases_choose_what_a_name_runs_on(deps):
    """``dall-e-3=gpt-image-2.5-flare`` runs dall-e-3 requests on flare; the answer says so."""
    req = GenerationRequest(prompt="x", model="dall-e-3", size="1792x1024", dialect="cli", account_id="a")
    assert service.validate(deps, req, has_refs=False).spec.name == "gpt-image-2"  # the default model
    deps.settings = deps.settings.model_copy(update={"model_aliases": "dall-e-3=gpt-image-2.5-flare"})
    resolved = service.validate(deps, req, has_refs=False)
    assert resolved.spec.name == "gpt-image-2.5-flare" and resolved.size == "1792x1024"
    assert any("dall-e-3" in w and "gpt-image-2.5-flare" in w for w in resolved.warnings)


def test_an_alias_never_brings_back_a_shut_down_model(deps):
    """``dall-e-3=dall-e-3`` (where it was once served): still never sent, it runs on the default."""
    req = GenerationRequest(prompt="x", model="dall-e-3", size="1792x1024", dialect="cli", account_id="a")
    deps.settings = deps.settings.model_copy(update={"model_aliases": "dall-e-3=dall-e-3"})
    assert service.validate(deps, req, has_refs=False).spec.name == "gpt-image-2"


def test_the_default_model_is_a_setting(deps):
    assert Settings.from_env(env()).default_model == "gpt-image-2"
    assert Settings.from_env(env(default_model="gpt-image-2.5-flare")).default_model == "gpt-image-2.5-flare"
    with pytest.raises(InternalError) as err:
        Settings.from_env(env(default_model="gpt-image-9"))
    assert "IMAGEMINT_DEFAULT_MODEL" in str(err.value)
    req = GenerationRequest(prompt="x", model="dall-e-2", dialect="cli", account_id="a")
    deps.settings = deps.settings.model_copy(update={"default_model": "gpt-image-2.6-sunburst"})
    assert service.validate(deps, req, has_refs=False).spec.name == "gpt-image-2.6-sunburst"


# --------------------------------------------------------------------------- the process's settings


def test_get_settings_reads_the_environment_once(monkeypatch):
    for k, v in env(bucket="first").items():
        monkeypatch.setenv(k, v)
    reset_settings()
    try:
        assert get_settings().bucket == "first"
        monkeypatch.setenv("IMAGEMINT_BUCKET", "second")
        assert get_settings().bucket == "first"
        reset_settings()
        assert get_settings().bucket == "second"
    finally:
        reset_settings()


def test_every_imagemint_variable_in_the_template_is_read():
    """A variable the template sets is a field of Settings, or of the chain's own config (rpc mode)."""
    from imagemint.adapters.chain.zora import ChainConfig

    template = Template.load(ROOT / "template.yaml")
    names = {n for fn in template.functions().values() for n in fn.environment if n.startswith("IMAGEMINT_")}
    assert names
    fields = set(Settings.model_fields) | set(ChainConfig.model_fields)
    assert {n for n in names if n.removeprefix("IMAGEMINT_").lower() not in fields} == set()


# --------------------------------------------------------------------------- fal's queue


def test_fal_queue_defaults_to_fal_itself_with_https_only_downloads():
    s = Settings.from_env(env())
    assert s.fal_queue_url == "" and s.fal_queue_is_local is False


@pytest.mark.parametrize(
    ("raw", "stored", "local"),
    [
        ("https://queue.example.test", "https://queue.example.test", False),
        ("https://queue.example.test/", "https://queue.example.test", False),
        ("https://127.0.0.1:8443", "https://127.0.0.1:8443", False),  # TLS stub: downloads stay https
        ("http://127.0.0.1:18080", "http://127.0.0.1:18080", True),
        ("http://127.0.0.2:18080/", "http://127.0.0.2:18080", True),
        ("http://localhost:18080", "http://localhost:18080", True),
        ("http://[::1]:18080", "http://[::1]:18080", True),
    ],
)
def test_fal_queue_url_https_anywhere_or_plain_http_on_loopback(raw, stored, local):
    s = Settings.from_env(env(fal_queue_url=raw))
    assert s.fal_queue_url == stored and s.fal_queue_is_local is local


@pytest.mark.parametrize(
    "raw",
    [
        "http://queue.fal.run",  # the key would cross the network in clear
        "http://10.0.0.5:8080",
        "http://169.254.169.254",
        "http://127.0.0.1.example.test",
        "http://localhost.example.test",
        "ftp://127.0.0.1",
        "queue.fal.run",
        "https://",
        "https://user:secret@queue.example.test",
        "http://127.0.0.1:notaport",
    ],
)
def test_fal_queue_url_anything_else_is_refused_at_cold_start(raw):
    message = config_error(env(fal_queue_url=raw))
    assert "IMAGEMINT_FAL_QUEUE_URL" in message and "secret" not in message
