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
5. Limits: a handler past its function's timeout is reported as Lambda does
   (``errorType`` ``Sandbox.Timedout``, :mod:`imagemint_dev.local.runner`); an
   EXPRESS execution (started or synchronous) still running after
   :data:`EXPRESS_MAX_S` (5 minutes, as in AWS; tests may lower it) times out
   where it is: no further state runs, so its job is left to the sweeper.
   STANDARD executions have no such limit.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import itertools
import json
import logging
import threading
import traceback
import uuid
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from imagemint_dev.local import steady

log = logging.getLogger("imagemint_dev.local")

#: What Lambda reports when the runtime process exits mid-invocation (killed, out of memory, os._exit).
RUNTIME_EXIT_ERROR = "Runtime.ExitError"
#: An Express workflow's longest execution (AWS: 5 minutes). Tests may lower it.
EXPRESS_MAX_S = 300.0

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
        # A timed-out handler is Lambda's "Sandbox.Timedout" (runner.LambdaTimedOut), not its class name.
        "errorType": getattr(exc, "error_type", None) or type(exc).__name__,
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

    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original_start = StepFunctionsParserBackend.start_execution

    def start_execution(self: Any, *args: Any, **kwargs: Any) -> Any:
        execution = original_start(self, *args, **kwargs)
        _limit_express(execution)
        try:  # a state machine keeps its latest finished executions, not all of them (steady.py)
            steady.prune_executions(self.describe_state_machine(execution.state_machine_arn))
        except Exception:  # noqa: BLE001 - pruning is housekeeping; the execution started
            log.debug("could not prune executions", exc_info=True)
        return execution

    LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign]
    StepFunctionResponse.start_sync_execution = start_sync_execution  # type: ignore[attr-defined]
    StepFunctionsParserBackend.start_execution = start_execution  # type: ignore[method-assign]
    _serialise_dynamodb()
    _fast_dynamodb_answers()
    _parse_each_definition_once()
    steady.install()
    _installed = True


#: Held over each whole DynamoDB request (:func:`_serialise_dynamodb`) and by housekeeping that walks the
#: tables (:func:`imagemint_dev.local.steady.expire_items`). Re-entrant: the request holds it, then the
#: backend methods take it again.
DYNAMODB_LOCK = threading.RLock()
_dynamodb_depth = 0  # nested dynamodb_section()s of the thread holding DYNAMODB_LOCK


@contextlib.contextmanager
def dynamodb_section() -> Iterator[None]:
    """Run DynamoDB work under :data:`DYNAMODB_LOCK`; when the outermost section ends, items are packed.

    Every request (``DynamoHandler.call_action``), backend item operation and the TTL sweep runs in one:
    the items a request unpacked go back to their packed form once it has answered
    (:func:`imagemint_dev.local.steady.pack_items`).
    """
    global _dynamodb_depth
    with DYNAMODB_LOCK:
        _dynamodb_depth += 1
        try:
            yield
        finally:
            _dynamodb_depth -= 1
            if _dynamodb_depth == 0:
                steady.pack_items()


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
    """One lock over each whole DynamoDB request, and transactions that copy only what they touch.

    The lock covers the request from parsing to the serialised answer: moto's responses copy and
    serialise the live item objects after the backend call returns (``UpdateItem`` deep-copies the
    item before updating it and serialises it after; ``GetItem`` serialises it), so a lock over the
    backend methods alone let another thread's update change an item mid-copy ("dictionary changed
    size during iteration", a 500). A DynamoDB request in moto is CPU-bound work of a millisecond
    or so under the GIL, so one lock costs no parallelism; nothing waits on I/O while holding it.
    """
    import functools

    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    def locked(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with dynamodb_section():
                return method(*args, **kwargs)

        return wrapper

    DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]
    for name in DYNAMODB_ITEM_OPERATIONS:
        setattr(DynamoDBBackend, name, locked(getattr(DynamoDBBackend, name)))
    DynamoHandler.call_action = locked(DynamoHandler.call_action)  # type: ignore[method-assign]


def _fast_dynamodb_answers() -> None:
    """DynamoDB answers (``DynamoResult``: plain dicts of attribute values) written with ``json.dumps``.

    moto 5.2.5 walks every answer through its generic shape serialiser: tens of milliseconds for a
    job record, under :data:`DYNAMODB_LOCK`, so that every other DynamoDB request of the runtime
    waited behind it (a third of the local pipeline's CPU in the throughput bench). The JSON protocol's
    body is that same dict; binary values go out base64-encoded as the serialiser writes them.
    Anything else (a timestamp, an error) takes moto's serialiser as before.
    """
    import base64

    from moto.dynamodb.responses import DynamoResult

    original = DynamoResult.execute_result

    def _encode(value: Any) -> Any:
        if isinstance(value, bytes | bytearray):
            return base64.b64encode(bytes(value)).decode("ascii")
        raise TypeError(type(value).__name__)

    def execute_result(self: Any, context: Any) -> Any:
        if context.service_model.protocol == "json" and isinstance(self.result, dict):
            try:
                body = json.dumps(self.result, default=_encode)
            except (TypeError, ValueError):
                return original(self, context)
            version = context.service_model.metadata.get("jsonVersion", "1.0")
            return 200, {"Content-Type": f"application/x-amz-json-{version}"}, body
        return original(self, context)

    DynamoResult.execute_result = execute_result  # type: ignore[method-assign]


#: Parsed state machine definitions kept (:func:`_parse_each_definition_once`); the runtime has two.
PARSED_DEFINITIONS_KEPT = 8


def _parse_each_definition_once() -> None:
    """Executions evaluate a definition parsed once, and Lambda tasks share one client per region.

    moto parses the ASL with antlr for every execution (~0.2 s of CPU for ours) and builds a new
    boto3 client for every Lambda task (~10 ms each, seven tasks a job). The parsed program keeps no
    per-execution state (moto's own Map iterations and Parallel branches share it across threads:
    what an execution counts, e.g. retries, lives in its environment under each component's
    ``heap_key``, which is fixed here before the program is shared). Parsed again when the
    definition changes (UpdateStateMachine); at most :data:`PARSED_DEFINITIONS_KEPT` are kept.
    """
    import boto3
    from botocore.config import Config
    from moto.core.models import botocore_stubber
    from moto.settings import moto_server_port
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds
    from moto.stepfunctions.parser.asl.component.component import Component
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    guard = threading.Lock()
    programs: dict[str, Any] = {}
    clients: dict[tuple[Any, ...], Any] = {}
    original_client_for = lambda_eval_utils.boto_client_for

    def fix_heap_keys(program: Any) -> None:
        seen: set[int] = set()
        stack = [program]
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, EvalComponent):
                _ = node.heap_key
            for value in vars(node).values():
                items = value.values() if isinstance(value, dict) else value
                if isinstance(value, Component):
                    stack.append(value)
                elif isinstance(value, list | tuple | dict):
                    stack.extend(v for v in items if isinstance(v, Component))

    def entrypoint(self: Any) -> Any:
        definition = self._evaluation_details.state_machine_details.definition
        with guard:
            program = programs.get(definition)
        if program is None:
            program = AmazonStateLanguageParser.parse(definition)[0]
            fix_heap_keys(program)
            with guard:
                if len(programs) >= PARSED_DEFINITIONS_KEPT:
                    programs.clear()
                program = programs.setdefault(definition, program)
        return program

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        if state_credentials is not None:
            return original_client_for(region=region, service=service, state_credentials=state_credentials)
        # moto's own client (boto_client.boto_client_for), with a pool for the tasks running at once.
        key = (region, service, botocore_stubber.enabled, moto_server_port())
        with guard:
            client = clients.get(key)
        if client is None:
            kwargs = (
                {} if botocore_stubber.enabled else {"endpoint_url": f"http://localhost:{moto_server_port()}"}
            )
            client = boto3.session.Session().client(
                service,
                aws_access_key_id="ak",
                aws_secret_access_key="sk",  # noqa: S106 - moto's fixed local credentials
                region_name=region,
                config=Config(
                    parameter_validation=False,
                    retries={"max_attempts": 0, "total_max_attempts": 1},
                    connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                    read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                    max_pool_connections=256,
                ),
                **kwargs,
            )
            with guard:
                client = clients.setdefault(key, client)
        return client

    ExecutionWorker._get_evaluation_entrypoint = entrypoint  # type: ignore[method-assign]
    lambda_eval_utils.boto_client_for = boto_client_for  # type: ignore[assignment]


def _transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    """moto 5.2.5's ``TransactWriteItems``, rolled back from copies of the items it touches.

    moto's own deep-copies every table a transaction names before it starts (the accounts table,
    with its ledger, on every charge): time and memory that grow with the table. The checks and
    outcomes are moto's; only the snapshot differs. Runs under the DynamoDB lock.
    """
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )
    from moto.dynamodb.models import get_filter_expression
    from moto.dynamodb.models.dynamo_type import DynamoType

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    saved: list[tuple[Any, Any, Any, Any]] = []  # (table, hash key, range key, copy of the item or None)

    def save(table_name: str, key: dict[str, Any]) -> None:
        table = self.tables.get(table_name)
        if table is None or table.hash_key_attr not in key:
            return
        hash_key = DynamoType(key[table.hash_key_attr])
        range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr in key else None
        if table.has_range_key and range_key is None:
            return
        saved.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))

    def rollback() -> None:
        for table, hash_key, range_key, item in reversed(saved):
            if item is None:
                table.delete_item(hash_key, range_key)
            elif range_key is not None:
                table.items[hash_key][range_key] = item
            else:
                table.items[hash_key] = item

    target_items: set[tuple[str, str]] = set()

    def check_unicity(table_name: str, key: dict[str, Any]) -> None:
        item = (str(table_name), str(dict(sorted(key.items()))))
        if item in target_items:
            raise MultipleTransactionsException()
        target_items.add(item)

    errors: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
    for item in transact_items:
        original_item: dict[str, Any] | None = None
        if len(list(item.keys())) > 1:
            rollback()
            raise TransactWriteSingleOpException
        try:
            op_type, op = next(iter(item.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table_name = op["TableName"]
            condition_expression = op.get("ConditionExpression")
            names = op.get("ExpressionAttributeNames")
            values = op.get("ExpressionAttributeValues")
            on_failure = op.get("ReturnValuesOnConditionCheckFailure")
            if op_type == "Put":
                attrs = op["Item"]
                table = self.get_table(table_name)
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = op["Key"]
            check_unicity(table_name, key)
            current = self.get_item(table_name, key)
            if condition_expression is not None:
                condition_op = get_filter_expression(condition_expression, names, values)
                if not condition_op.expr(current):
                    if on_failure == "ALL_OLD" and current:
                        original_item = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=original_item)
            if op_type != "ConditionCheck":
                save(table_name, key)
            if op_type == "Put":
                self.put_item(
                    table_name,
                    op["Item"],
                    condition_expression=condition_expression,
                    expression_attribute_names=names,
                    expression_attribute_values=values,
                )
            elif op_type == "Delete":
                self.delete_item(
                    table_name,
                    key,
                    condition_expression=condition_expression,
                    expression_attribute_names=names,
                    expression_attribute_values=values,
                )
            elif op_type == "Update":
                self.update_item(
                    table_name,
                    key,
                    update_expression=op["UpdateExpression"],
                    condition_expression=condition_expression,
                    expression_attribute_names=names,
                    expression_attribute_values=values,
                )
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            rollback()
            raise
        except ConditionalCheckFailed as e:
            errors.append(("ConditionalCheckFailed", str(e.message), original_item))
        except Exception as e:  # noqa: BLE001 - moto reports any other failure as the item's reason
            errors.append((type(e).__name__, str(e), original_item))
    if any(code is not None for code, _, _ in errors):
        rollback()
        raise TransactionCanceledException(errors)


def _is_s3_notification(event: Any) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    return bool(records) and isinstance(records[0], dict) and records[0].get("eventSource") == "aws:s3"


def _run_async(invoke: Callable[[Any], Any], event: Any) -> None:
    try:
        invoke(event)
    except Exception:  # an async invocation's error goes to the function's logs, as in Lambda
        log.exception("an asynchronous invocation raised")


_express_lock = threading.Condition()
# (monotonic deadline, sequence, weak reference to the execution), a heap: a finished execution is not
# kept alive for its 5 minutes by this list (a server left running would hold hundreds).
_express_due: list[tuple[float, int, Any]] = []
_express_seq = itertools.count()
_express_thread: threading.Thread | None = None


def _limit_express(execution: Any) -> None:
    """Time out an EXPRESS execution still running after :data:`EXPRESS_MAX_S`, as AWS stops it.

    One watcher thread for all executions (a heap of deadlines), not a timer thread each.
    """
    global _express_thread
    # moto keeps the type asked for in ``StateMachine.type`` (its ``sm_type`` is always STANDARD).
    kind = getattr(getattr(execution, "state_machine", None), "type", None) or execution.sm_type
    if str(getattr(kind, "value", kind)) != "EXPRESS":
        return
    import heapq
    import time

    with _express_lock:
        deadline = time.monotonic() + EXPRESS_MAX_S
        heapq.heappush(_express_due, (deadline, next(_express_seq), weakref.ref(execution)))
        if _express_thread is None:
            _express_thread = threading.Thread(target=_watch_express, name="express-limit", daemon=True)
            _express_thread.start()
        _express_lock.notify()


def _watch_express() -> None:
    import heapq
    import time

    while True:
        with _express_lock:
            while not _express_due or _express_due[0][0] > time.monotonic():
                _express_lock.wait(None if not _express_due else _express_due[0][0] - time.monotonic())
            _, _, ref = heapq.heappop(_express_due)
        execution = ref()
        if execution is None:  # finished and forgotten
            continue
        env = getattr(execution.exec_worker, "env", None)
        if env is not None and env.is_running():
            log.warning("Express execution %s ran past %.0f s: timed out", execution.exec_arn, EXPRESS_MAX_S)
            env.set_timed_out()


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
    _limit_express(execution)  # before start(): a synchronous execution runs in this thread
    execution.start()
    out = dict(execution.to_start_sync_execution_output())
    out["status"] = str(getattr(out.get("status"), "value", out.get("status")))
    out.pop("inputDetails", None)
    out.pop("outputDetails", None)
    return out
