"""template.yaml itself: every path, handler, placeholder, reference and route resolves.

Read with ``imagemint_dev.local.template`` (intrinsics kept as data) and also
transformed offline by ``aws-sam-translator`` (a managed-policy loader that
returns nothing, S3-style dummy code locations), so what SAM would deploy is
checked too. Handlers are read with ``ast``: nothing here imports a function.
"""

from __future__ import annotations

import ast
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from imagemint_dev.local.template import Template

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = "python3.12"
HTTP_METHODS = {"get", "post", "put", "delete", "patch", "head", "options"}
PSEUDO = {
    "AWS::StackName",
    "AWS::StackId",
    "AWS::Region",
    "AWS::AccountId",
    "AWS::URLSuffix",
    "AWS::Partition",
    "AWS::NoValue",
}
_PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")


@pytest.fixture(scope="module")
def template() -> Template:
    return Template.load(ROOT / "template.yaml")


@pytest.fixture(scope="module")
def translated(template: Template) -> dict[str, Any]:
    """The CloudFormation SAM would deploy, made offline (the same translation the IAM check uses)."""
    from imagemint_dev.local.iam import translate

    return translate(template.raw)


def functions(template: Template) -> dict[str, Any]:
    return template.functions()


def api_functions(template: Template) -> dict[str, Any]:
    return {
        name: fn
        for name, fn in functions(template).items()
        if any(ev.get("Type") == "HttpApi" for ev in fn.events.values())
    }


def state_machine(template: Template) -> dict[str, Any]:
    """The EXPRESS machine (synchronous requests); the STANDARD one is built from the same ASL
    (tests/unit/test_asl_budget.py checks they agree)."""
    (sm,) = [
        r
        for r in template.of_type("AWS::Serverless::StateMachine").values()
        if r["Properties"]["Type"] == "EXPRESS"
    ]
    return sm["Properties"]


def asl(template: Template) -> dict[str, Any]:
    return json.loads((ROOT / state_machine(template)["DefinitionUri"]).read_text(encoding="utf-8"))


def handler_module(template: Template, logical_id: str) -> tuple[ast.Module, str]:
    fn = functions(template)[logical_id]
    module, _, attribute = fn.handler.rpartition(".")
    path = fn.code_uri / (module.replace(".", "/") + ".py")
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), attribute


def served_routes(tree: ast.Module) -> set[tuple[str, str]]:
    """(METHOD, path) of every ``@app.<method>("path")`` / ``@app.route(path, method=...)`` decorator."""
    out = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for deco in node.decorator_list:
            if not (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute)):
                continue
            if not (isinstance(deco.func.value, ast.Name) and deco.func.value.id == "app"):
                continue
            verb = deco.func.attr
            if verb not in HTTP_METHODS | {"route"} or not deco.args:
                continue
            path = re.sub(r"<(\w+)>", r"{\1}", ast.literal_eval(deco.args[0]))
            methods = [verb]
            if verb == "route":
                given = {k.arg: ast.literal_eval(k.value) for k in deco.keywords}.get("method", "get")
                methods = [given] if isinstance(given, str) else list(given)
            out |= {(m.upper(), path) for m in methods}
    return out


def template_routes(template: Template, logical_id: str) -> set[tuple[str, str]]:
    return {(r.method, r.path) for r in template.routes() if r.function == logical_id}


def walk(value: Any) -> Any:
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)


def task_states(states: dict[str, Any], inside: tuple[dict[str, Any], ...] = ()) -> Any:
    """(name, state, enclosing Map/Parallel states) for every Task, nested ones included."""
    for name, state in states.items():
        if state["Type"] == "Task":
            yield name, state, inside
        for branch in state.get("Branches", []):
            yield from task_states(branch["States"], (*inside, state))
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                yield from task_states(state[key]["States"], (*inside, state))


# --------------------------------------------------------------------------- functions and layers


def test_every_function_folder_is_a_function_in_the_template(template):
    folders = {
        p.name for p in (ROOT / "functions").iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
    }
    code = {fn.code_uri.resolve() for fn in functions(template).values()}
    assert {f for f in folders if (ROOT / "functions" / f).resolve() not in code} == set()


def test_every_code_uri_and_handler_exists(template):
    for name, fn in functions(template).items():
        assert fn.code_uri.is_dir(), f"{name}: CodeUri {fn.code_uri} is missing"
        tree, attribute = handler_module(template, name)
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)} | {
            t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)
        }
        assert attribute in defined, f"{name}: {fn.handler} has no {attribute}"


def test_every_layer_holds_part_of_the_imagemint_package(template):
    layers = template.layers()
    assert set(layers) == {"CoreLayer", "ProvidersLayer", "ChainLayer", "C2paLayer"}
    for name, path in layers.items():
        assert path.is_dir(), f"{name}: ContentUri {path} is missing"
        assert (path / "imagemint").is_dir() and (path / "requirements.txt").is_file(), name
        assert (path / "Makefile").read_text().startswith("#") and f"build-{name}:" in (
            path / "Makefile"
        ).read_text()
    # Only the core layer makes imagemint a package; the others extend it (imagemint.__path__).
    assert (layers["CoreLayer"] / "imagemint" / "__init__.py").is_file()
    assert not (layers["ProvidersLayer"] / "imagemint" / "__init__.py").exists()
    assert not (layers["ChainLayer"] / "imagemint" / "__init__.py").exists()
    assert not (layers["C2paLayer"] / "imagemint" / "__init__.py").exists()


def test_each_function_attaches_only_the_layers_its_path_uses(template):
    want = {
        "GenerateStepFunction": ["CoreLayer", "ProvidersLayer"],
        "ArchiveStepFunction": ["CoreLayer", "ChainLayer"],
        "MintStepFunction": ["CoreLayer", "ChainLayer"],
        "SignStepFunction": ["CoreLayer", "C2paLayer"],
        "VerifyFunction": ["CoreLayer", "ChainLayer", "C2paLayer"],
        "GalleryFunction": ["CoreLayer", "ChainLayer", "C2paLayer"],  # it verifies what it shows
    }
    fns = functions(template)
    assert len(api_functions(template)) >= 6
    for name, fn in fns.items():
        assert fn.layers == want.get(name, ["CoreLayer"]), name


def test_runtime_is_python_3_12_everywhere(template, translated):
    glob = template.raw["Globals"]["Function"]
    assert glob["Runtime"] == RUNTIME
    for name, res in template.of_type("AWS::Serverless::Function").items():
        assert res["Properties"].get("Runtime", RUNTIME) == RUNTIME, name
    for name, res in template.of_type("AWS::Serverless::LayerVersion").items():
        assert res["Properties"]["CompatibleRuntimes"] == [RUNTIME], name
        assert res.get("Metadata", {}).get("BuildMethod") == "makefile", name
    lambdas = [r for r in translated["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    assert len(lambdas) == len(functions(template))
    assert {r["Properties"]["Runtime"] for r in lambdas} == {RUNTIME}


def test_layer_requirements_are_pinned_as_the_project_pins_them():
    """Each layer's requirements appear in the project's dependencies with the same pin; boto3 in none."""
    deps = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    )
    for layer in ("core", "providers", "chain", "c2pa"):
        lines = (ROOT / "layers" / layer / "requirements.txt").read_text(encoding="utf-8").splitlines()
        reqs = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
        assert reqs, layer
        for req in reqs:
            assert req in deps, f"layers/{layer}: {req} is not pinned the same in pyproject.toml"
            assert not req.startswith(("boto3", "botocore")), "the runtime's own boto3 is used"


# --------------------------------------------------------------------------- references


def test_every_ref_and_getatt_target_exists(template):
    resources = set(template.resources)
    names = resources | set(template.raw.get("Parameters") or {}) | PSEUDO
    missing = []
    for node in walk(template.raw):
        if not isinstance(node, dict) or len(node) != 1:
            continue
        ((kind, value),) = node.items()
        if kind == "Ref" and value not in names:
            missing.append(f"Ref {value}")
        elif kind == "Fn::GetAtt" and value[0] not in resources:
            missing.append(f"GetAtt {'.'.join(value)}")
        elif kind == "Fn::Sub":
            text, extra = (value, {}) if isinstance(value, str) else (value[0], value[1])
            for ref in _PLACEHOLDER.findall(text):
                if ref not in extra and ref.split(".")[0] not in names:
                    missing.append(f"Sub ${{{ref}}}")
    assert not missing


def test_state_machine_definition_and_substitutions_agree(template):
    props = state_machine(template)
    path = ROOT / props["DefinitionUri"]
    assert path.is_file()
    placeholders = set(_PLACEHOLDER.findall(path.read_text(encoding="utf-8")))
    assert placeholders and placeholders == set(props["DefinitionSubstitutions"])
    for value in props["DefinitionSubstitutions"].values():
        assert value["Fn::GetAtt"][0] in template.resources and value["Fn::GetAtt"][1] == "Arn"


def test_every_task_function_can_be_invoked_by_the_state_machine(template):
    props = state_machine(template)
    targets = {v["Fn::GetAtt"][0] for v in props["DefinitionSubstitutions"].values()}
    invokable = {
        p["LambdaInvokePolicy"]["FunctionName"]["Ref"] for p in props["Policies"] if "LambdaInvokePolicy" in p
    }
    assert targets <= invokable


# --------------------------------------------------------------------------- the state machine


def test_state_machines_are_one_express_and_one_standard(template, translated):
    assert state_machine(template)["Type"] == "EXPRESS"
    sms = [r for r in translated["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    assert sorted(sm["Properties"]["StateMachineType"] for sm in sms) == ["EXPRESS", "STANDARD"]


def test_every_task_retries_and_is_caught(template):
    tasks = list(task_states(asl(template)["States"]))
    assert {"Generate", "Record", "RecordFailure"} <= {name for name, _, _ in tasks}
    for name, state, inside in tasks:
        if state.get("Parameters") == {"warm": True}:  # GenerateAndWarm's warm-ups: no Retry, all caught
            assert "Retry" not in state and state["Catch"][0]["ErrorEquals"] == ["States.ALL"], name
            continue
        assert state.get("Retry"), f"{name} has no Retry"
        if name == "RecordFailure":
            assert "Catch" not in state, "RecordFailure must not catch (the execution fails after it)"
            continue
        caught = state.get("Catch") or any(outer.get("Catch") for outer in inside)
        assert caught, f"{name} has no Catch (nor does a Map/Parallel around it)"


def test_every_transition_names_an_existing_state(template):
    def check(states: dict[str, Any]) -> None:
        names = set(states)
        for name, state in states.items():
            targets = [state.get("Next"), state.get("Default")]
            targets += [c.get("Next") for c in state.get("Choices", []) + state.get("Catch", [])]
            assert {t for t in targets if t} <= names, name
            for branch in state.get("Branches", []):
                check(branch["States"])
            for key in ("ItemProcessor", "Iterator"):
                if key in state:
                    check(state[key]["States"])

    definition = asl(template)
    assert definition["StartAt"] in definition["States"]
    check(definition["States"])


# --------------------------------------------------------------------------- routes


def test_each_function_serves_exactly_its_template_routes(template):
    apis = api_functions(template)
    for name in apis:
        tree, _ = handler_module(template, name)
        assert served_routes(tree) == template_routes(template, name), name


def test_routes_are_unique(template):
    keys = [r.route_key for r in template.routes()]
    assert len(keys) == len(set(keys))


def test_translated_api_has_one_route_per_template_route(template, translated):
    (api,) = [r for r in translated["Resources"].values() if r["Type"] == "AWS::ApiGatewayV2::Api"]
    paths = api["Properties"]["Body"]["paths"]
    deployed = {(method.upper(), path): op for path, ops in paths.items() for method, op in ops.items()}
    routes = {(r.method, r.path): r.function for r in template.routes()}
    assert set(deployed) == set(routes)
    for key, function in routes.items():
        integration = deployed[key]["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws_proxy" and integration["payloadFormatVersion"] == "2.0"
        assert f"${{{function}.Arn}}" in integration["uri"]["Fn::Sub"], key
    permissions = [r for r in translated["Resources"].values() if r["Type"] == "AWS::Lambda::Permission"]
    assert len([p for p in permissions if p["Properties"]["Principal"] == "apigateway.amazonaws.com"]) == len(
        routes
    )


# --------------------------------------------------------------------------- fit for any account and stack


_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _evaluate(value: Any, stack_id: str) -> Any:
    """An intrinsic expression of pseudo parameters only, evaluated for one stack id."""
    from imagemint_dev.local.template import Resolver

    stack_name = stack_id.split("/")[1]
    pseudo = {"AWS::StackId": stack_id, "AWS::StackName": stack_name, "AWS::AccountId": "123456789012"}
    return Resolver({}, {}, {**pseudo, "AWS::Region": "ap-southeast-2"}).resolve(value)


@pytest.mark.parametrize(
    "stack_name",
    ["imagemint", "Imagemint-Prod", "a" * 128, "my-label-imagemint-production-eu-west-1-blue-green"],
)
def test_the_bucket_name_is_valid_for_any_stack_name(template, stack_name):
    stack_id = (
        f"arn:aws:cloudformation:ap-southeast-2:123456789012:stack/{stack_name}/"
        "8e1c2b90-1a2b-11ef-9c3d-0a1b2c3d4e5f"
    )
    bucket = template.resources["ImagesBucket"]["Properties"]["BucketName"]
    name = _evaluate(bucket, stack_id)
    assert _BUCKET_NAME.fullmatch(name) and ".." not in name, name
    # Functions are told the same name (a Ref would be circular: the bucket notifies IngestFunction).
    env = template.raw["Globals"]["Function"]["Environment"]["Variables"]["IMAGEMINT_BUCKET"]
    assert _evaluate(env, stack_id) == name


def test_named_resources_are_unique_per_stack(template, translated):
    schedules = [r for r in translated["Resources"].values() if r["Type"] == "AWS::Scheduler::Schedule"]
    assert schedules
    one = "arn:aws:cloudformation:us-east-1:123456789012:stack/imagemint/11111111-1111-1111-1111-111111111111"
    two = "arn:aws:cloudformation:us-east-1:123456789012:stack/imagemint/22222222-2222-2222-2222-222222222222"
    for schedule in schedules:
        name = schedule["Properties"].get("Name")
        assert name is not None, "SAM's default schedule name is the same in every stack"
        a, b = _evaluate(name, one), _evaluate(name, two)
        assert a != b and len(a) <= 64, (a, b)


def test_retained_data_does_not_block_a_retry_after_a_failed_create(template):
    for name, res in template.resources.items():
        if res.get("DeletionPolicy", "").startswith("Retain"):
            assert res["DeletionPolicy"] == "RetainExceptOnCreate", name


def test_samconfig_sets_every_parameter_to_the_templates_default(template):
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    overrides = config["default"]["deploy"]["parameters"]["parameter_overrides"]
    given = dict(item.split("=", 1) for item in overrides)
    assert given == template.parameter_defaults()
