"""boto3 clients, one per service for the life of the process, and DynamoDB value conversion."""

from __future__ import annotations

import json
import os
import threading
from decimal import Decimal
from functools import cache
from typing import Any

_lock = threading.Lock()


@cache
def client(service: str, region: str) -> Any:
    """One boto3 client per service for the life of the process (warm invocations reuse it)."""
    import boto3
    from botocore.config import Config

    cfg: dict[str, Any] = {"retries": {"mode": "standard", "max_attempts": 3}}
    if service == "stepfunctions":
        # StartSyncExecution waits for the whole state machine.
        cfg["read_timeout"] = 120
        # Every call this client makes starts an execution, and an Express StartExecution or
        # StartSyncExecution is not idempotent: a retry after a call that reached the service
        # (a read timeout, a reset connection) would start a second execution of the same job.
        # One attempt only; the caller finds its job by id and decides (imagemint.domain.ingest).
        cfg["retries"] = {"mode": "standard", "total_max_attempts": 1}
        if os.environ.get("AWS_ENDPOINT_URL"):
            # A local endpoint (the local runtime) has no "sync-" host prefix.
            cfg["inject_host_prefix"] = False
    if service == "s3":
        cfg["signature_version"] = "s3v4"
    with _lock:
        return boto3.session.Session().client(service, region_name=region, config=Config(**cfg))


def to_dynamo(value: Any) -> Any:
    """JSON-ready data as DynamoDB takes it (floats as Decimal)."""
    return json.loads(json.dumps(value), parse_float=Decimal)


def from_dynamo(value: Any) -> Any:
    """DynamoDB data back as JSON-ready data (Decimal as int or float)."""
    if isinstance(value, list):
        return [from_dynamo(v) for v in value]
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value
