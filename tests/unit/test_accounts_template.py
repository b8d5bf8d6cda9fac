"""template.yaml gives the accounts, credits and idempotency code what it needs in AWS: the tables,
their keys, index and TTL, each function's environment and the policies for what it writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from imagemint_dev.local.template import Template

ROOT = Path(__file__).resolve().parents[2]
GENERATION_APIS = (
    "LegacyImageFunction",
    "ContentImageFunction",
    "OpenAIImagesFunction",
    "AgentAIImageFunction",
)


@pytest.fixture(scope="module")
def template() -> Template:
    return Template.load(ROOT / "template.yaml")


def policies(template: Template, function: str) -> list[Any]:
    return template.resources[function]["Properties"].get("Policies") or []


def crud_tables(template: Template, function: str) -> set[str]:
    return {
        p["DynamoDBCrudPolicy"]["TableName"]["Ref"]
        for p in policies(template, function)
        if isinstance(p, dict) and "DynamoDBCrudPolicy" in p
    }


@pytest.mark.parametrize("function", GENERATION_APIS)
def test_generation_apis_have_the_idempotency_table(template: Template, function: str) -> None:
    env = template.functions()[function].environment
    assert env["IMAGEMINT_IDEMPOTENCY_TABLE"] == {"Ref": "IdempotencyTable"}
    assert {"AccountsTable", "JobsTable", "IdempotencyTable"} <= crud_tables(template, function)


def test_the_failure_path_may_refund(template: Template) -> None:
    """RecordFailure and Record run in the record step: refunds write the accounts table."""
    assert "AccountsTable" in crud_tables(template, "RecordStepFunction")


def test_idempotency_table_is_keyed_by_id_with_powertools_ttl(template: Template) -> None:
    props = template.resources["IdempotencyTable"]["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}


def test_accounts_table_has_the_by_account_index_and_ttl(template: Template) -> None:
    from imagemint.adapters.aws.accounts import ACCOUNT_INDEX

    props = template.resources["AccountsTable"]["Properties"]
    (index,) = props["GlobalSecondaryIndexes"]
    assert index["IndexName"] == ACCOUNT_INDEX
    assert index["KeySchema"] == [
        {"AttributeName": "account_id", "KeyType": "HASH"},
        {"AttributeName": "pk", "KeyType": "RANGE"},
    ]
    assert {"AttributeName": "account_id", "AttributeType": "S"} in props["AttributeDefinitions"]
    # The counters' TTL attribute is not one that API key records use (expires_at).
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}


def test_large_replayed_responses_expire_from_the_bucket(template: Template) -> None:
    rules = template.resources["ImagesBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert any(r["Prefix"] == "idempotency/" and r["Status"] == "Enabled" for r in rules)
