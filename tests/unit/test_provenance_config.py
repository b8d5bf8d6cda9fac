"""Archive and mint modes on with their secret unreadable: a clear ``config`` error naming the parameter.

SSM is moto in-process (no parameter stored, as on a deploy that skipped the step). The job keeps its
images and ends PARTIAL with ``resume_from`` (resumable once the parameter exists); nothing is posted
or sent: the secret is read before any network use.
"""

from __future__ import annotations

import json

import pytest

from imagemint.domain import service
from imagemint.domain.models import GenerationRequest
from imagemint.settings import Settings
from imagemint.testing.inline import InlinePipeline
from imagemint.testing.memory import MemoryAccountStore, MemoryImageStore, MemoryJobStore
from imagemint.wiring import Deps, reset, set_deps

WALLET = "/imagemint/arweave-wallet"
SIGNER = "/imagemint/signer-key"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):
    moto = pytest.importorskip("moto")
    from aws_lambda_powertools.utilities.parameters import base

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    base.DEFAULT_PROVIDERS.clear()
    with moto.mock_aws():
        yield
    base.DEFAULT_PROVIDERS.clear()


def deps_with(**settings: str) -> Deps:
    s = Settings(
        jobs_table="jobs",
        accounts_table="accounts",
        bucket="bucket",
        key_hash_secret="test-secret",
        public_base_url="https://api.test",
        **settings,
    )
    built = Deps(settings=s, jobs=MemoryJobStore(), accounts=MemoryAccountStore(), images=MemoryImageStore())
    built.pipeline = InlinePipeline(built)
    set_deps(built)
    return built


def run(deps: Deps) -> dict:
    from imagemint.domain import auth

    account, _ = auth.create_account(deps.accounts, deps.settings, name="a", credits=1000)
    request = GenerationRequest(
        prompt="a koi",
        model="gpt-image-2",
        dialect="openai",
        account_id=account.account_id,
        archive=True,
        mint=True,
    )
    result = service.submit(deps, request)
    job = deps.jobs.get(result.job_id)
    assert job is not None
    return job.model_dump()


def test_an_unreadable_arweave_wallet_is_an_archive_config_error_and_the_job_is_resumable(aws):
    deps = deps_with(
        archive_mode="arweave", arweave_wallet_param=WALLET, arweave_gateway_url="https://arweave.net"
    )
    job = run(deps)
    assert job["status"] == "PARTIAL" and job["resume_from"] == "archive"
    error = job["provenance_error"]
    assert error["code"] == "archive_failed" and error["details"]["reason"] == "config"
    assert error["param"] == WALLET and WALLET in error["message"]
    assert job["result"]["images"]  # kept for the resume


def test_an_unreadable_signer_key_is_a_mint_config_error_and_the_job_is_resumable(aws):
    import boto3

    from imagemint.adapters.arweave.wallet import generate_wallet

    # Archiving works (the embedded store, its wallet in SSM); only the signer key is missing.
    boto3.client("ssm").put_parameter(Name=WALLET, Value=json.dumps(generate_wallet()), Type="SecureString")
    deps = deps_with(archive_mode="embedded", arweave_wallet_param=WALLET, chain_mode="rpc")
    # The chain settings the mint step reads (ChainConfig): a loopback RPC that is never reached.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMAGEMINT_CHAIN_RPC_URL", "http://127.0.0.1:9")
        mp.setenv("IMAGEMINT_SIGNER_KEY_PARAM", SIGNER)
        job = run(deps)
        assert job["status"] == "PARTIAL" and job["resume_from"] == "mint", job["provenance_error"]
        error = job["provenance_error"]
        assert error["code"] == "mint_failed" and error["details"]["reason"] == "config"
        assert error["param"] == SIGNER and SIGNER in error["message"]

        boto3.client("ssm").put_parameter(Name=SIGNER, Value=" ", Type="SecureString")
        reset("minter")
        job = run(deps)
        assert job["provenance_error"]["details"]["reason"] == "config"
        assert "empty" in job["provenance_error"]["message"]
    assert json.dumps(job)  # the record stays plain JSON
