"""Extensions of moto that the local runtime needs (moto is pinned; tests fail loudly if these move).

1. Lambda: moto runs function code only in Docker. Every path into a function
   (Invoke, Step Functions tasks, S3 notifications) goes through
   ``LambdaFunction._invoke_lambda``; we route it to an in-process runner for
   the template's functions and return Lambda's error payload on an exception.
2. Step Functions ``StartSyncExecution`` (Express workflows) is not served by
   moto; we serve it with moto's own ASL interpreter (``SyncExecution``).
3. DynamoDB: moto's item operations are not atomic across its server's
   threads (a conditional update reads, checks and writes without a lock, and a
   cancelled ``TransactWriteItems`` restores a snapshot of whole tables, undoing
   writes other threads made meanwhile). DynamoDB guarantees both, and credits
   depend on them: every item operation of the backend runs under one lock.
4. Crash injection, a fake of the Lambda runtime dying (:func:`inject_crash`):
   the next invocation(s) of a function die before the handler runs, or
   after it ran to the end (its side effects happen, its result is lost).
   Either way the caller gets what Lambda reports for a runtime that exited
   (a function error with ``errorType`` ``Runtime.ExitError``), which the
   state machine's Retry lists match. Applies to every path through
   ``_invoke_lambda`` (Invoke, Step Functions tasks, S3 notifications; Lambda's
   own retries of failed asynchronous invocations are not emulated).
"""

from __future__ import annotations

import copy
import datetime
import json
import logging
import threading
import traceback
import uuid
from collections.abc import Callable
from typing import Any

log = logging.getLogger("imagemint_dev.local")

#: What Lambda reports when the runtime process exits mid-invocation (killed, out of memory, os._exit).
RUNTIME_EXIT_ERROR = "Runtime.ExitError"

_functions: dict[str, Callable[[Any], Any]] = {}
_installed = False
_crash_lock = threading.Lock()
_crash_plans: dict[str, list[int]] = {}  # function name -> [after, invocations to let through, to kill]
_crash_counts: dict[str, int] = {}  # function name -> invocations killed so far


def register_function(name: str, invoke: Callable[[Any], Any]) -> None:
    _functions[name] = invoke


def clear_functions() -> None:
    _functions.clear()
    clear_crashes()


def inject_crash(name: str, *, after: bool, times: int = 1, skip: int = 0) -> None:
    """Kill the next ``times`` invocations of the registered function ``name``, after letting ``skip`` run.

    ``after=False``: the runtime dies before the handler is called (nothing
    happens). ``after=True``: the handler runs to the end, then the runtime
    dies before returning (side effects happen, the result is lost). Replaces
    an earlier plan for the same function.
    """
    if name not in _functions:
        raise KeyError(f"No in-process function {name!r}")
    if times < 1 or skip < 0:
        raise ValueError("times must be at least 1 and skip at least 0")
    with _crash_lock:
        _crash_plans[name] = [int(bool(after)), int(skip), int(times)]


def crash_count(name: str) -> int:
    """How many invocations of ``name`` were killed since the crashes were last cleared."""
    with _crash_lock:
        return _crash_counts.get(name, 0)


def clear_crashes() -> None:
    with _crash_lock:
        _crash_plans.clear()
        _crash_counts.clear()


def _take_crash(name: str) -> bool | None:
    """None: run normally; False / True: kill this invocation before / after the handler."""
    with _crash_lock:
        plan = _crash_plans.get(name)
        if plan is None:
            return None
        if plan[1] > 0:  # still letting invocations through
            plan[1] -= 1
            return None
        plan[2] -= 1
        if plan[2] <= 0:
            del _crash_plans[name]
        _crash_counts[name] = _crash_counts.get(name, 0) + 1
        return bool(plan[0])


def _runtime_exit(request_id: str) -> dict[str, Any]:
    return {
        "errorType": RUNTIME_EXIT_ERROR,
        "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: signal: killed",
    }


def _run_killed(invoke: Callable[[Any], Any], event: Any, after: bool) -> None:
    """An invocation whose runtime dies: the handler runs first only when ``after``; its result is lost."""
    if not after:
        return
    try:
        invoke(event)
    except Exception:  # lost with the runtime, as the result would be
        log.exception("a killed invocation's handler raised")


def _lambda_error(exc: BaseException) -> dict[str, Any]:
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": str(uuid.uuid4()),
        "stackTrace": traceback.format_tb(exc.__traceback__)[-5:],
    }


def install() -> None:
    global _installed
    if _installed:
        return
    from moto.awslambda.models import LambdaFunction
    from moto.core.responses import ActionResult
    from moto.stepfunctions.responses import StepFunctionResponse

    original = LambdaFunction._invoke_lambda

    def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
        invoke = _functions.get(self.function_name)
        if invoke is None:
            return original(self, event)
        if isinstance(event, str | bytes):
            event = json.loads(event or "{}")
        crash = _take_crash(self.function_name)
        if _is_s3_notification(event):
            # S3 invokes its targets asynchronously: the PUT does not wait for the function.
            if crash is None:
                threading.Thread(target=_run_async, args=(invoke, event), daemon=True).start()
            else:
                threading.Thread(target=_run_killed, args=(invoke, event, crash), daemon=True).start()
            return "", False, ""
        if crash is not None:
            _run_killed(invoke, event if event is not None else {}, crash)
            return json.dumps(_runtime_exit(str(uuid.uuid4()))), True, ""
        try:
            result = invoke(event if event is not None else {})
        except Exception as exc:  # Lambda reports any handler exception as a function error
            return json.dumps(_lambda_error(exc)), True, ""
        return json.dumps(result), False, ""

    def start_sync_execution(self: Any) -> Any:
        arn = self._get_param("stateMachineArn")
        name = self._get_param("name") or str(uuid.uuid4())
        data = self._get_param("input", if_none="{}")
        return ActionResult(run_sync_execution(self.stepfunction_backend, arn, name, data))

    LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign]
    StepFunctionResponse.start_sync_execution = start_sync_execution  # type: ignore[attr-defined]
    _serialise_dynamodb()
    _installed = True


DYNAMODB_ITEM_OPERATIONS = (
    "put_item",
    "get_item",
    "update_item",
    "delete_item",
    "query",
    "scan",
    "transact_write_items",
)


def _serialise_dynamodb() -> None:
    import functools

    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()  # re-entrant: transact_write_items calls get_item

    def locked(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(*args, **kwargs)

        return wrapper

    for name in DYNAMODB_ITEM_OPERATIONS:
        setattr(DynamoDBBackend, name, locked(getattr(DynamoDBBackend, name)))


def _is_s3_notification(event: Any) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    return bool(records) and isinstance(records[0], dict) and records[0].get("eventSource") == "aws:s3"


def _run_async(invoke: Callable[[Any], Any], event: Any) -> None:
    try:
        invoke(event)
    except Exception:  # an async invocation's error goes to the function's logs, as in Lambda
        log.exception("an asynchronous invocation raised")


def run_sync_execution(backend: Any, arn: str, name: str, data: str) -> dict[str, Any]:
    from moto.stepfunctions.parser.backend.execution import SyncExecution

    sm = backend.describe_state_machine(arn)
    clone = copy.deepcopy(sm, {id(sm.executions): [], id(sm.backend): sm.backend})
    exec_arn = (
        f"arn:aws:states:{backend.region_name}:{backend.account_id}:express:{sm.name}:{name}:{uuid.uuid4()}"
    )
    execution = SyncExecution(
        name=name,
        sm_type=clone.sm_type,
        role_arn=clone.roleArn,
        exec_arn=exec_arn,
        account_id=backend.account_id,
        region_name=backend.region_name,
        state_machine=clone,
        start_date=datetime.datetime.now(tz=datetime.UTC),
        cloud_watch_logging_session=None,
        input_data=data,
        trace_header=None,
        activity_store={},
    )
    execution.start()
    out = dict(execution.to_start_sync_execution_output())
    out["status"] = str(getattr(out.get("status"), "value", out.get("status")))
    out.pop("inputDetails", None)
    out.pop("outputDetails", None)
    return out
