"""No execution outruns its workflow (issue 11).

Synchronous requests run on the EXPRESS state machine, which AWS stops at 5 minutes; async jobs and
resumes run on the STANDARD one built from the same ASL. This computes, from
``statemachine/generate.asl.json`` and ``template.yaml``, the worst-case duration of every path a
synchronous execution can take and checks each stays under Express's limit:

* a Task attempt lasts at most its ``TimeoutSeconds`` or its function's Lambda ``Timeout``, whichever
  is shorter, whatever the error (an attempt that fails at once is counted at full length too);
* a Task makes 1 + the sum of its retriers' ``MaxAttempts`` attempts (each retrier counts its own);
  between them the longest retry delays (``IntervalSeconds`` x ``BackoffRate``^k, capped by
  ``MaxDelaySeconds``; full jitter only shortens them);
* a Map runs its items in waves of ``MaxConcurrency`` (at most as many items as a job has images: the
  registry's largest ``max_n``), each wave as long as its slowest item;
* a Parallel lasts as long as its slowest branch (each branch's worst path, its Catch paths included),
  times 1 + its own retries, plus their delays, as a Task's attempts;
* Catch paths are paths: the worst case of a state is its own worst case plus the worst of every state
  it can go to (Next, or any Catch target);
* a Choice branch is left out only when a synchronous input cannot take it (``mode`` is ``sync`` and
  there is no ``resume_from``);
* every state transition is allowed :data:`PER_STATE_S` of the service's own time.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from imagemint.domain import registry
from imagemint_dev.local.template import Template

ROOT = Path(__file__).resolve().parents[2]
ASL = ROOT / "statemachine" / "generate.asl.json"
EXPRESS_LIMIT_S = 300.0
PER_STATE_S = 0.5
DEFAULT_TASK_TIMEOUT_S = 99_999_999  # ASL's default TimeoutSeconds: only the function's timeout bounds it
#: A synchronous execution's input: what imagemint.domain.service.submit starts.
SYNC_INPUT = {"mode": "sync"}


def _template() -> Template:
    return Template.load(ROOT / "template.yaml")


def _machines(t: Template) -> dict[str, dict[str, Any]]:
    return {name: res["Properties"] for name, res in t.of_type("AWS::Serverless::StateMachine").items()}


def _function_timeouts(t: Template, props: dict[str, Any]) -> dict[str, float]:
    """``${Placeholder}`` of the ASL -> that function's Lambda timeout, from the template."""
    fns = t.functions()
    out: dict[str, float] = {}
    for key, value in (props.get("DefinitionSubstitutions") or {}).items():
        target = value.get("Fn::GetAtt") if isinstance(value, dict) else None
        if target and target[0] in fns:
            out["${" + key + "}"] = float(fns[target[0]].timeout)
    return out


def _retry_delays(retrier: dict[str, Any]) -> float:
    interval = float(retrier.get("IntervalSeconds", 1))
    rate = float(retrier.get("BackoffRate", 2.0))
    cap = retrier.get("MaxDelaySeconds")
    total = 0.0
    for k in range(int(retrier.get("MaxAttempts", 3))):
        delay = interval * rate**k
        total += min(delay, float(cap)) if cap is not None else delay
    return total


def task_worst_s(state: dict[str, Any], timeouts: dict[str, float]) -> float:
    """All attempts of a Task at full length, plus the longest delays between them."""
    limit = float(state.get("TimeoutSeconds", DEFAULT_TASK_TIMEOUT_S))
    fn = timeouts.get(state.get("Resource", ""))
    if fn is not None:
        limit = min(limit, fn)
    return attempts_worst_s(state, limit)


def attempts_worst_s(state: dict[str, Any], attempt_s: float) -> float:
    """A state's attempts (1 + its retriers' ``MaxAttempts``) of ``attempt_s`` each, plus the delays."""
    retriers = state.get("Retry") or []
    attempts = 1 + sum(int(r.get("MaxAttempts", 3)) for r in retriers)
    return attempts * attempt_s + sum(_retry_delays(r) for r in retriers)


def _rule_possible(rule: dict[str, Any], data: dict[str, Any]) -> bool:
    """False only when ``data`` (a synchronous input) certainly does not match the rule."""
    if "And" in rule:
        return all(_rule_possible(r, data) for r in rule["And"])
    if "Or" in rule:
        return any(_rule_possible(r, data) for r in rule["Or"])
    if "Not" in rule:
        return True  # conservative
    var = str(rule.get("Variable", ""))
    if var in ("$.mode", "$.resume_from"):
        key = var[2:]
        if "IsPresent" in rule:
            return (key in data) == rule["IsPresent"]
        if "StringEquals" in rule:
            return data.get(key) == rule["StringEquals"]
    return True


def worst_paths(
    states: dict[str, Any], start: str, timeouts: dict[str, float], max_items: int
) -> tuple[float, list[str]]:
    """The longest path from ``start`` to an end, and its states (states form a DAG here)."""
    memo: dict[str, tuple[float, list[str]]] = {}

    def walk(name: str, seen: frozenset[str]) -> tuple[float, list[str]]:
        if name in seen:
            raise AssertionError(f"a loop through {name}: the worst case is unbounded")
        if name in memo:
            return memo[name]
        st = states[name]
        kind = st["Type"]
        own = PER_STATE_S
        nexts: list[str] = []
        if kind == "Task":
            own += task_worst_s(st, timeouts)
        elif kind == "Map":
            proc = st.get("ItemProcessor") or st["Iterator"]
            item, _ = worst_paths(proc["States"], proc["StartAt"], timeouts, max_items)
            concurrency = int(st.get("MaxConcurrency", 0)) or max_items
            own += math.ceil(max_items / concurrency) * item
        elif kind == "Parallel":
            branch = max(
                worst_paths(b["States"], b["StartAt"], timeouts, max_items)[0] for b in st["Branches"]
            )
            own += attempts_worst_s(st, branch)
        elif kind == "Wait":
            own += float(st.get("Seconds", 0))
            assert "SecondsPath" not in st and "TimestampPath" not in st, f"{name}: unbounded Wait"
        if kind == "Choice":
            nexts = [c["Next"] for c in st["Choices"] if _rule_possible(c, SYNC_INPUT)]
            if "Default" in st:
                nexts.append(st["Default"])
        elif "Next" in st:
            nexts.append(st["Next"])
        nexts += [c["Next"] for c in st.get("Catch") or []]
        best: tuple[float, list[str]] = (0.0, [])
        for nxt in dict.fromkeys(nexts):
            cand = walk(nxt, seen | {name})
            if cand[0] > best[0]:
                best = cand
        memo[name] = (own + best[0], [name, *best[1]])
        return memo[name]

    return walk(start, frozenset())


def _max_images() -> int:
    return max(spec.max_n for spec in registry.MODELS.values())


def test_every_synchronous_path_fits_in_an_express_execution() -> None:
    t = _template()
    machines = _machines(t)
    express = [p for p in machines.values() if p.get("Type") == "EXPRESS"]
    assert len(express) == 1
    definition = json.loads(ASL.read_text(encoding="utf-8"))
    worst, path = worst_paths(
        definition["States"], definition["StartAt"], _function_timeouts(t, express[0]), _max_images()
    )
    assert worst < EXPRESS_LIMIT_S, f"worst case {worst:.0f} s through {' -> '.join(path)}"


def test_the_computation_sees_retries_backoff_waves_and_catch_paths() -> None:
    """The calculator itself, on a small machine whose worst case is known by hand."""
    states = {
        "Start": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.mode", "StringEquals": "async", "Next": "Slow"}],
            "Default": "T",
        },
        "Slow": {"Type": "Task", "Resource": "${F}", "TimeoutSeconds": 10_000, "End": True},
        "T": {
            "Type": "Task",
            "Resource": "${F}",
            "TimeoutSeconds": 50,  # the function's 20 s is shorter
            "Retry": [{"ErrorEquals": ["X"], "IntervalSeconds": 2, "MaxAttempts": 3, "MaxDelaySeconds": 5}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Fallback"}],
            "Next": "M",
        },
        "Fallback": {"Type": "Task", "Resource": "${F}", "TimeoutSeconds": 100, "End": True},
        "M": {
            "Type": "Map",
            "MaxConcurrency": 4,
            "ItemProcessor": {
                "StartAt": "I",
                "States": {"I": {"Type": "Task", "Resource": "${G}", "End": True}},
            },
            "End": True,
        },
    }
    worst, path = worst_paths(states, "Start", {"${F}": 20.0, "${G}": 7.0}, max_items=10)
    t_cost = 4 * 20 + (2 + 4 + 5)  # 4 attempts; delays 2, 4, then 8 capped at 5
    map_cost = 3 * (7 + PER_STATE_S)  # 10 items in waves of 4
    fallback_cost = PER_STATE_S + 20  # the Catch path: its own function's 20 s
    assert map_cost > fallback_cost and path == ["Start", "T", "M"]  # "Slow" is async-only: left out
    assert worst == pytest.approx(3 * PER_STATE_S + t_cost + map_cost)


def test_the_computation_sees_a_parallels_slowest_branch_its_retries_and_its_catch() -> None:
    states = {
        "Start": {"Type": "Pass", "Next": "P"},
        "P": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "${F}", "End": True}}},
                {
                    "StartAt": "W",
                    "States": {
                        "W": {
                            "Type": "Task",
                            "Resource": "${G}",
                            "TimeoutSeconds": 30,  # the function's 40 s is longer
                            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "WFallback"}],
                            "End": True,
                        },
                        "WFallback": {"Type": "Task", "Resource": "${F}", "Next": "WDone"},
                        "WDone": {"Type": "Succeed"},
                    },
                },
            ],
            "Retry": [{"ErrorEquals": ["X"], "IntervalSeconds": 3, "MaxAttempts": 1}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Fallback"}],
            "Next": "After",
        },
        "After": {"Type": "Task", "Resource": "${F}", "End": True},
        "Fallback": {"Type": "Task", "Resource": "${G}", "TimeoutSeconds": 100, "End": True},
    }
    worst, path = worst_paths(states, "Start", {"${F}": 20.0, "${G}": 40.0}, max_items=1)
    branch = (PER_STATE_S + 30) + (PER_STATE_S + 20) + PER_STATE_S  # W caught, WFallback, WDone: > A's 20.5
    parallel = PER_STATE_S + 2 * branch + 3  # two attempts, one delay of 3 s
    assert path == ["Start", "P", "Fallback"]  # the Catch path (40 s) is longer than After (20 s)
    assert worst == pytest.approx(PER_STATE_S + parallel + PER_STATE_S + 40)


def _find_state(states: dict[str, Any], name: str) -> dict[str, Any]:
    """A state by name, inside Parallel branches and Map processors too."""
    if name in states:
        return states[name]  # type: ignore[no-any-return]
    for st in states.values():
        inner = [b["States"] for b in st.get("Branches", [])]
        inner += [st[k]["States"] for k in ("ItemProcessor", "Iterator") if k in st]
        for sub in inner:
            try:
                return _find_state(sub, name)
            except KeyError:
                pass
    raise KeyError(name)


def test_only_generate_can_fail_generate_and_warm_and_its_output_is_generates() -> None:
    """While Generate runs, Sign, Archive and Mint are invoked with ``{"warm": true}`` (the last two only
    when the request reaches them). No warm-up can fail the state: no Retry, a timeout shorter than one
    Generate attempt, and every error caught to the end of its branch. A generation failure reaches
    RecordFailure as before (the Parallel's Catch, the branch's own Error and Cause under ``$.error``),
    and what follows sees Generate's branch (the whole state with ``$.result``)."""
    states = json.loads(ASL.read_text(encoding="utf-8"))["States"]
    par = states["GenerateAndWarm"]
    # Synchronous jobs take the warm branch; anything else (async: STANDARD, billed per transition,
    # nobody waiting) runs the same Generate task alone.
    sync = {
        "And": [{"Variable": "$.mode", "IsPresent": True}, {"Variable": "$.mode", "StringEquals": "sync"}],
        "Next": "GenerateAndWarm",
    }
    assert sync in states["Start"]["Choices"] and states["Start"]["Default"] == "GenerateAlone"
    alone = dict(states["GenerateAlone"])
    assert alone.pop("Next") == "Sign" and alone.pop("Catch") == par["Catch"]
    assert (
        alone.pop("Comment")
        and {k: v for k, v in par["Branches"][0]["States"]["Generate"].items() if k not in ("End", "Comment")}
        == alone
    )
    assert par["Type"] == "Parallel"
    assert par["Next"] == "Sign" and par["OutputPath"] == "$[0]"
    assert par["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "RecordFailure"}]
    assert "Retry" not in par and "ResultSelector" not in par and "ResultPath" not in par
    first, *warmers = par["Branches"]
    generate = first["States"]["Generate"]
    assert first["StartAt"] == "Generate" and list(first["States"]) == ["Generate"]
    assert generate["End"] is True and generate["ResultPath"] == "$.result" and "Catch" not in generate
    warmed = set()
    for branch in warmers:
        for name, st in branch["States"].items():
            assert st["Type"] in ("Task", "Choice", "Succeed"), name  # nothing that fails the branch
            if st["Type"] == "Task":
                warmed.add(st["Resource"])
                assert st["Parameters"] == {"warm": True} and "Retry" not in st, name
                assert st["TimeoutSeconds"] < generate["TimeoutSeconds"], name
                (catch,) = st["Catch"]
                assert catch["ErrorEquals"] == ["States.ALL"], name
                assert branch["States"][catch["Next"]]["Type"] == "Succeed", name
            if st["Type"] == "Choice":  # a missing field must not fail the branch (States.Runtime)
                for rule in (c.get("And", [c]) for c in st["Choices"]):
                    tested = {r["Variable"] for r in rule if "BooleanEquals" in r}
                    assert tested <= {"$.request.archive", "$.request.mint"}, name
                    assert tested <= {r["Variable"] for r in rule if r.get("IsPresent") is True}, name
    assert warmed == {"${SignFunctionArn}", "${ArchiveFunctionArn}", "${MintFunctionArn}"}


def test_a_provider_call_ends_before_its_generate_attempt() -> None:
    """The generate step's provider timeout is shorter than the Generate state's: the function reports
    ProviderTimeout (retried once) rather than being cut off by States.Timeout mid-call."""
    t = _template()
    generate = _find_state(json.loads(ASL.read_text(encoding="utf-8"))["States"], "Generate")
    env = t.functions()["GenerateStepFunction"].environment
    provider_timeout = float(env["IMAGEMINT_PROVIDER_TIMEOUT_S"])
    assert provider_timeout + 5 <= generate["TimeoutSeconds"]
    assert any("ProviderTimeout" in r["ErrorEquals"] and r["MaxAttempts"] <= 1 for r in generate["Retry"])
    assert all(r["MaxAttempts"] <= 1 for r in generate["Retry"] if "ProviderTimeout" in r["ErrorEquals"])


def test_a_mint_step_waiting_for_its_sender_hands_back_before_its_attempt_ends() -> None:
    """A mint step whose moment another step is sending waits at most ``batching.WAIT_S``, then raises
    MintPending, which the Mint state retries (apart from failures): its attempt never ends in
    States.Timeout merely waiting. The wait leaves room for a cold start under the Task's timeout, and
    a step takes the lease only while a send still fits in it."""
    from imagemint.domain import batching

    mint = _find_state(json.loads(ASL.read_text(encoding="utf-8"))["States"], "Mint")
    fn = _template().functions()["MintStepFunction"]
    attempt = min(float(mint["TimeoutSeconds"]), float(fn.timeout))
    assert batching.WAIT_S + 5 <= attempt
    assert batching.LEAD_S < batching.WAIT_S
    (pending,) = [r for r in mint["Retry"] if "MintPending" in r["ErrorEquals"]]
    assert pending["ErrorEquals"] == ["MintPending"] and pending["MaxAttempts"] >= 1
    others = [r for r in mint["Retry"] if r is not pending]
    assert all("States.Timeout" in r["ErrorEquals"] and "MintError" in r["ErrorEquals"] for r in others)
    assert batching.MintPending.__module__ == "imagemint.errors"  # one error tree


def test_both_machines_are_built_from_the_same_asl_and_may_do_the_same() -> None:
    """Async jobs and resumes (STANDARD) run exactly what synchronous requests (EXPRESS) run."""
    machines = _machines(_template())
    by_type = {p["Type"]: p for p in machines.values()}
    assert set(by_type) == {"EXPRESS", "STANDARD"} and len(machines) == 2
    express, standard = by_type["EXPRESS"], by_type["STANDARD"]
    for key in ("DefinitionUri", "DefinitionSubstitutions", "Policies"):
        assert express[key] == standard[key], key
