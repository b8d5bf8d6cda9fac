"""The OpenAPI document (``imagemint.api.openapi``) against the template, the handlers and the seeds.

Drift in either direction fails here:

* routes and methods: the template's HttpApi events, the document's paths and each function's
  ``app.py`` routes are the same set, and each route's handler calls the api function the document
  names (whose ``guarded`` mapper is the dialect whose error shape it documents);
* statuses: the success statuses a handler writes (``response(200, ...)``, ``accepted_response``,
  ``Response(status_code=302)``) are exactly the documented ones; every documented error status is
  one an error class has, and the dialect's one ``error_response`` answers it with a body that
  validates against the documented schema;
* fields: each dialect's field set (``content.FIELDS``, ``openai.KNOWN``, agent.ai's) is the
  documented request schema's;
* answers: requests through each function's real ``lambda_handler`` (in-memory stores) answer a
  documented status with a body that validates;
* the seeds: every example request and response of the seed documents validates against the document,
  and every property the seeds' own schemas name is documented.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator, FormatChecker
from openapi_spec_validator import validate as validate_spec

from events import FUNCTIONS_DIR, ROOT, bearer, http_event, invoke, multipart, png
from imagemint import errors
from imagemint.api import agentai, content, http, legacy, openai, openapi
from imagemint_dev.local.template import Template

SEEDS = Path(__file__).resolve().parent / "seeds"
MAPPERS = {
    "legacy": legacy.error_response,
    "content": content.error_response,
    "openai": openai.error_response,
    "agentai": agentai.error_response,
    "plain": http.plain_error_response,
}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return openapi.document("https://api.test")


def validator(doc: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator({**schema, "components": doc["components"]}, format_checker=FormatChecker())


def problems(doc: dict[str, Any], schema: dict[str, Any], instance: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator(doc, schema).iter_errors(instance)
    ]


def response_schema(
    doc: dict[str, Any], path: str, method: str, status: int, ctype: str = "application/json"
):
    entry = doc["paths"][path][method]["responses"].get(str(status))
    assert entry is not None, f"{method.upper()} {path} does not document {status}"
    return entry["content"][ctype]["schema"]


def template_routes() -> dict[tuple[str, str], str]:
    t = Template.load(ROOT / "template.yaml")
    return {(r.method.lower(), r.path): r.function for r in t.routes()}


# --------------------------------------------------------------------------- the document itself


def test_the_document_is_valid_openapi_3_1(doc):
    assert doc["openapi"].startswith("3.1")
    validate_spec(doc)
    assert doc["servers"] == [{"url": "https://api.test"}]
    json.dumps(doc)  # plain JSON


def test_building_it_is_lazy_and_the_copies_are_independent(doc):
    other = openapi.document()
    other["paths"].clear()
    assert openapi.document()["paths"] and openapi.document()["servers"] == [{"url": "/"}]


def test_no_function_but_docs_imports_the_contract():
    for app in sorted(FUNCTIONS_DIR.glob("*/app.py")):
        names = {
            (n.module or "") + ":" + ",".join(a.name for a in n.names)
            for n in ast.walk(ast.parse(app.read_text()))
            if isinstance(n, ast.ImportFrom)
        }
        if app.parent.name != "docs":
            assert not any("openapi" in n for n in names), app


# --------------------------------------------------------------------------- routes and handlers


def _app_routes(app: Path) -> dict[tuple[str, str], set[str]]:
    """(method, path) -> the ``module.function`` calls of the route function in a function's app.py."""
    out: dict[tuple[str, str], set[str]] = {}
    for node in ast.walk(ast.parse(app.read_text())):
        if not isinstance(node, ast.FunctionDef):
            continue
        calls = {
            f"{c.func.value.id}.{c.func.attr}"
            for c in ast.walk(node)
            if isinstance(c, ast.Call)
            and isinstance(c.func, ast.Attribute)
            and isinstance(c.func.value, ast.Name)
        }
        for deco in node.decorator_list:
            if (
                isinstance(deco, ast.Call)
                and isinstance(deco.func, ast.Attribute)
                and isinstance(deco.func.value, ast.Name)
                and deco.func.value.id == "app"
                and deco.args
                and isinstance(deco.args[0], ast.Constant)
            ):
                path = re.sub(r"<(\w+)>", r"{\1}", deco.args[0].value)
                out[(deco.func.attr, path)] = calls
    return out


def test_routes_are_the_templates_and_the_handlers(doc):
    routes = template_routes()
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == set(routes), "the document's routes are not the template's"
    assert {(op.method, op.path) for op in openapi.OPERATIONS} == set(routes)
    t = Template.load(ROOT / "template.yaml")
    handled: dict[tuple[str, str], set[str]] = {}
    for fn in t.functions().values():
        app = Path(fn.code_uri) / "app.py"
        if app.is_file():
            for key, calls in _app_routes(app).items():
                assert routes.get(key) == fn.logical_id, (
                    f"{app} serves {key}, the template routes it elsewhere"
                )
                handled[key] = calls
    assert set(handled) == set(routes), "a template route no app.py serves (or one the template lacks)"
    for op in openapi.OPERATIONS:
        assert op.handler in handled[(op.method, op.path)], f"{op.operation_id}: {op.handler} is not called"


def _api_function(handler: str) -> ast.FunctionDef:
    module, _, name = handler.partition(".")
    source = Path(importlib.util.find_spec(f"imagemint.api.{module}").origin).read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise AssertionError(f"imagemint.api.{module} has no {name}")


def _written_statuses(fn: ast.FunctionDef) -> set[int]:
    out: set[int] = set()
    for c in ast.walk(fn):
        if not isinstance(c, ast.Call):
            continue
        name = c.func.attr if isinstance(c.func, ast.Attribute) else getattr(c.func, "id", "")
        if name in ("response", "_text") and c.args and isinstance(c.args[0], ast.Constant):
            out.add(c.args[0].value)
        elif name == "Response":
            out |= {
                k.value.value
                for k in c.keywords
                if k.arg == "status_code" and isinstance(k.value, ast.Constant)
            }
        elif name in ("accepted_response", "still_running_response"):
            out.add(202)
    return out


def _mapper_of(fn: ast.FunctionDef) -> str:
    for c in ast.walk(fn):
        if isinstance(c, ast.Call) and getattr(c.func, "id", "") == "guarded" and c.args:
            return ast.unparse(c.args[0])
    raise AssertionError(f"{fn.name} is not guarded by a dialect's error mapper")


@pytest.mark.parametrize("op", openapi.OPERATIONS, ids=lambda op: op.operation_id)
def test_success_statuses_are_what_the_handler_writes(op, doc):
    fn = _api_function(op.handler)
    assert _written_statuses(fn) == set(op.success), op.handler
    documented = {int(s) for s in doc["paths"][op.path][op.method]["responses"] if int(s) < 400}
    assert documented == set(op.success)
    want = "plain_error_response" if op.dialect == "plain" else "error_response"
    assert _mapper_of(fn) == want and (op.dialect == "plain" or op.handler.startswith(op.dialect + "."))


def _error(cls: type[errors.ImagemintError]) -> errors.ImagemintError:
    details = {"required": 12, "available": 3, "retry_after": 5}
    if cls.status == 504:  # a job past the deadline: its id and URL
        details |= {"job_id": str(uuid.uuid4()), "url": "https://api.test/api/jobs/x"}
    return cls("something <b>went</b> wrong", param="prompt", **details)


@pytest.mark.parametrize("op", openapi.OPERATIONS, ids=lambda op: op.operation_id)
def test_each_documented_error_is_what_the_dialects_mapper_answers(op, doc):
    classes = list(errors.BY_CODE.values())
    for status in op.errors:
        answering = [c for c in classes if c.status == status]
        assert answering, f"{op.operation_id} documents {status}, which no error class has"
        schema = response_schema(doc, op.path, op.method, status)
        for cls in answering:
            resp = MAPPERS[op.dialect](_error(cls))
            assert resp.status_code == status, (cls, status)
            body = json.loads(resp.body)
            assert problems(doc, schema, body) == [], (op.operation_id, cls.__name__, body)
    # API Gateway's own answers validate where it can give them.
    gateway = {"message": "Too Many Requests"}
    assert problems(doc, response_schema(doc, op.path, op.method, 429), gateway) == []
    assert (
        problems(doc, response_schema(doc, op.path, op.method, 500), {"message": "Internal Server Error"})
        == []
    )


def test_request_fields_are_the_dialects(doc):
    schemas = doc["components"]["schemas"]
    assert set(schemas["ContentCreateImageRequest"]["properties"]) == content.FIELDS
    assert set(schemas["ImageGenerationRequest"]["properties"]) == openai.KNOWN
    assert set(schemas["ImageEditRequest"]["properties"]) == openai.KNOWN
    agentai_fields = {"prompt", "model", "model_style", "model_aspect_ratio", *http.EXTENSION_FIELDS}
    assert set(schemas["AgentAIGenerateImageRequest"]["properties"]) == agentai_fields
    for name in ("ContentCreateImageRequest", "ImageGenerationRequest", "AgentAIGenerateImageRequest"):
        assert set(http.EXTENSION_FIELDS) <= set(schemas[name]["properties"]), name


def test_the_job_view_is_read_from_the_models_and_the_view():
    from imagemint.domain.views import PUBLIC_FIELDS, RESULT_FIELDS

    view = openapi.document()["components"]["schemas"]["JobView"]
    assert set(view["properties"]) == {*PUBLIC_FIELDS, "url", "result", "provenance_cost"}
    assert set(view["properties"]["result"]["properties"]) == {*RESULT_FIELDS, "image_urls"}
    assert view["properties"]["status"]["enum"] == ["ACCEPTED", "RUNNING", "SUCCEEDED", "PARTIAL", "FAILED"]


def test_async_answers_link_to_the_job(doc):
    for op in openapi.OPERATIONS:
        if 202 in op.success and op.body is not None:
            entry = doc["paths"][op.path][op.method]
            assert any(p["name"] == "Prefer" for p in entry["parameters"]), op.operation_id
            links = entry["responses"]["202"]["links"]
            assert links["GetJob"] == {
                "operationId": "getJob",
                "parameters": {"id": "$response.body#/job_id"},
            }


# --------------------------------------------------------------------------- real handlers, real answers


def _check(doc: dict[str, Any], op_id: str, reply: Any, expect: int) -> None:
    op = next(o for o in openapi.OPERATIONS if o.operation_id == op_id)
    assert reply.status == expect, (op_id, reply.status, reply.text[:300])
    entry = doc["paths"][op.path][op.method]["responses"].get(str(reply.status))
    assert entry is not None, f"{op_id} answered {reply.status}, which is not documented"
    if "content" in entry:
        ctype = reply.headers.get("content-type", "").split(";")[0]
        assert ctype in entry["content"], (op_id, ctype)
        if ctype == "application/json":
            schema, body = entry["content"][ctype]["schema"], json.loads(reply.text)
            assert problems(doc, schema, body) == [], op_id
            # Every field the answer has is documented (a new field fails here until the document has it).
            name = schema.get("$ref", "").rpartition("/")[2]
            documented = doc["components"]["schemas"].get(name, {}).get("properties")
            if documented and reply.status < 400:
                assert set(body) <= set(documented), (op_id, set(body) - set(documented))


def _json_post(path: str, body: Any, headers: dict[str, str]) -> dict[str, Any]:
    return http_event("POST", path, json_body=body, headers=headers)


def test_the_handlers_answers_validate(doc, deps):
    from imagemint.domain import auth as accounts

    acc, key = accounts.create_account(deps.accounts, deps.settings, name="Contract", credits=100_000)
    auth = bearer(key)
    legacy_q = {"prompt": "a koi", "account_id": acc.account_id}
    _check(
        doc,
        "legacyGenerateImage",
        invoke("legacy_image", http_event("GET", "/api/image/generate", query=legacy_q)),
        200,
    )
    _check(doc, "legacyGenerateImage", invoke("legacy_image", http_event("GET", "/api/image/generate")), 400)
    other = {"prompt": "a koi", "account_id": str(uuid.uuid4())}
    _check(
        doc,
        "legacyGenerateImage",
        invoke("legacy_image", http_event("GET", "/api/image/generate", query=other)),
        404,
    )
    _check(
        doc,
        "legacyGenerateImage",
        invoke("legacy_image", http_event("GET", "/api/image/generate", query=other, headers=auth)),
        403,
    )

    ci = "/api/content/image"
    _check(doc, "contentCreateImage", invoke("content_image", _json_post(ci, {"prompt": "a koi"}, {})), 401)
    _check(doc, "contentCreateImage", invoke("content_image", _json_post(ci, {"num_images": 9}, auth)), 400)
    ok = {"prompt": "a koi", "model": "gpt-image-2", "aspect_ratio": "16:9"}
    _check(doc, "contentCreateImage", invoke("content_image", _json_post(ci, ok, auth)), 200)
    prefer = {**auth, "prefer": "respond-async"}
    accepted = invoke("content_image", _json_post(ci, ok, prefer))
    _check(doc, "contentCreateImage", accepted, 202)

    job_id = accepted.json["job_id"]
    jobs_path = f"/api/jobs/{job_id}"
    _check(
        doc,
        "getJob",
        invoke("jobs", http_event("GET", jobs_path, headers=auth, path_params={"id": job_id})),
        200,
    )
    _check(doc, "getJob", invoke("jobs", http_event("GET", jobs_path, path_params={"id": job_id})), 401)
    resume = http_event("POST", jobs_path + "/resume", headers=auth, path_params={"id": job_id})
    _check(doc, "resumeJob", invoke("jobs", resume), 409)
    missing = str(uuid.uuid4())
    _check(
        doc,
        "getJob",
        invoke("jobs", http_event("GET", f"/api/jobs/{missing}", headers=auth, path_params={"id": missing})),
        404,
    )

    tl = http_event("GET", "/api/content/templates")
    _check(doc, "contentListTemplates", invoke("content_templates", tl), 200)
    for tid, status in (("album-record-store", 200), ("nope", 404)):
        ev = http_event("GET", f"/api/content/templates/{tid}", path_params={"id": tid})
        _check(doc, "contentGetTemplate", invoke("content_templates", ev), status)

    for op_id, path in (
        ("aigneCreateImage", "/api/images/generations"),
        ("openaiCreateImage", "/v1/images/generations"),
    ):
        _check(doc, op_id, invoke("openai_images", _json_post(path, {"prompt": "a koi"}, {})), 401)
        _check(doc, op_id, invoke("openai_images", _json_post(path, {"prompt": "a koi", "n": 0}, auth)), 400)
        body = {"prompt": "a koi", "model": "gpt-image-2", "size": "1024x1024", "response_format": "url"}
        _check(doc, op_id, invoke("openai_images", _json_post(path, body, auth)), 200)
    ctype, form = multipart(
        {"prompt": "add a hat", "model": "gpt-image-2"}, [("image", "a.png", "image/png", png())]
    )
    edit = http_event(
        "POST", "/v1/images/edits", body=form, is_base64=True, headers={**auth, "content-type": ctype}
    )
    _check(doc, "openaiEditImage", invoke("openai_images", edit), 200)
    _check(
        doc, "openaiListModels", invoke("openai_images", http_event("GET", "/v1/models", headers=auth)), 200
    )
    for model, status in (("gpt-image-2", 200), ("nope", 404)):
        ev = http_event("GET", f"/v1/models/{model}", headers=auth, path_params={"model": model})
        _check(doc, "openaiGetModel", invoke("openai_images", ev), status)

    aa = "/action/generate_image"
    _check(doc, "agentaiGenerateImage", invoke("agentai_image", _json_post(aa, {"prompt": "a koi"}, {})), 401)
    _check(
        doc,
        "agentaiGenerateImage",
        invoke("agentai_image", _json_post(aa, {"prompt": "a koi", "model": "x"}, auth)),
        400,
    )
    _check(
        doc,
        "agentaiGenerateImage",
        invoke("agentai_image", _json_post(aa, {"prompt": "a <b>koi</b>"}, auth)),
        200,
    )

    nf = str(uuid.uuid4())
    files = http_event("GET", f"/api/files/{nf}/0.png", path_params={"job_id": nf, "name": "0.png"})
    _check(doc, "getFile", invoke("files", files), 404)


def test_the_docs_function_serves_the_document_the_page_and_its_files(doc):
    served = invoke("docs", http_event("GET", "/openapi.json"))
    _check(doc, "getOpenAPI", served, 200)
    assert served.json == openapi.document()  # the server is "/": this API, wherever it is served
    page = invoke("docs", http_event("GET", "/docs"))
    _check(doc, "getDocs", page, 200)
    assert "docs/swagger-ui-bundle.js" in page.text and "openapi.json" in page.text
    assert "//" not in re.sub(r"https?://www\.w3\.org", "", page.text.split("<body>")[1])  # nothing remote
    assert page.headers["x-content-type-options"] == "nosniff"
    for name, ctype in openapi.DOCS_ASSETS.items():
        reply = invoke("docs", http_event("GET", f"/docs/{name}", path_params={"asset": name}))
        _check(doc, "getDocsAsset", reply, 200)
        assert reply.headers["content-type"] == ctype
        assert reply.text == (FUNCTIONS_DIR / "docs" / "static" / name).read_text(encoding="utf-8")
    missing = invoke("docs", http_event("GET", "/docs/x.js", path_params={"asset": "x.js"}))
    _check(doc, "getDocsAsset", missing, 404)


def test_the_swagger_ui_files_are_the_pinned_packages():
    """functions/docs/static/ is a byte-for-byte copy of the swagger-ui-py files the dev extra pins."""
    import tomllib

    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    pin = next(d for d in dev if d.startswith("swagger-ui-py=="))
    from importlib.metadata import version

    assert version("swagger-ui-py") == pin.split("==")[1]
    package = Path(importlib.util.find_spec("swagger_ui").submodule_search_locations[0]) / "static"
    for name in openapi.DOCS_ASSETS:
        assert (FUNCTIONS_DIR / "docs" / "static" / name).read_bytes() == (package / name).read_bytes(), name
    assert sorted(p.name for p in (FUNCTIONS_DIR / "docs" / "static").iterdir()) == sorted(
        openapi.DOCS_ASSETS
    )


# --------------------------------------------------------------------------- the seeds


def _seed(prefix: str) -> str:
    (path,) = SEEDS.glob(f"{prefix}_*.txt")
    return path.read_text(encoding="utf-8")


def _yaml_block(text: str) -> dict[str, Any]:
    return yaml.safe_load(text.split("````yaml", 1)[1].split("\n", 1)[1].split("````", 1)[0])


def _json_blocks(text: str) -> list[Any]:
    """Every JSON object in a text, with the docs' elisions (``, ...]``) dropped."""
    out = []
    for block in re.findall(r"(?ms)^\{\n.*?^\}", text):
        out.append(json.loads(re.sub(r",\s*\.\.\.\s*\]", "]", block)))
    return out


def _component(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def test_the_seed_copies_are_the_shared_seeds():
    shared = ROOT.parent / "shared" / "seeds"
    if shared.is_dir():  # beside the repository (development, CI): the copies must not drift
        for path in SEEDS.glob("*.txt"):
            assert path.read_bytes() == (shared / path.name).read_bytes(), path.name


def test_legacy_seed_examples_validate(doc):
    (example,) = _json_blocks(_seed("001"))
    assert problems(doc, _component(doc, "LegacyImageResponse"), example) == []
    assert problems(doc, _component(doc, "LegacyError"), {"error": "Prompt is required"}) == []
    params = {
        p["name"] for p in doc["paths"]["/api/image/generate"]["get"]["parameters"] if p["in"] == "query"
    }
    assert re.findall(r"[?&](\w+)=", _seed("001")) == ["prompt", "account_id"] and params == {
        "prompt",
        "account_id",
    }
    seed = _yaml_block(_seed("000"))
    ours = doc["components"]["schemas"]
    for name, mine in (
        ("ImageGenerationResponse", "LegacyImageResponse"),
        ("ArweaveTransaction", "ArweaveTransaction"),
        ("InProcessMoment", "InProcessMoment"),
        ("ImageGenerationErrorResponse", "LegacyError"),
    ):
        assert set(seed["components"]["schemas"][name]["properties"]) <= set(ours[mine]["properties"]), name


def test_content_seed_schema_is_documented(doc):
    seed = _yaml_block(_seed("002"))["components"]["schemas"]
    ours = doc["components"]["schemas"]
    request = ours["ContentCreateImageRequest"]["properties"]
    for field, spec in seed["ContentCreateImageRequest"]["properties"].items():
        assert field in request, field
        for key in ("enum", "default", "minimum", "maximum"):
            if key in spec:
                assert request[field][key] == spec[key], (field, key)
    assert set(seed["ContentCreateImageResponse"]["required"]) <= set(
        ours["ContentCreateImageResponse"]["required"]
    )
    assert problems(doc, _component(doc, "ContentError"), {"error": "Unauthorized"}) == []
    seed_security = _yaml_block(_seed("002"))["components"]["securitySchemes"]
    assert seed_security["apiKeyAuth"]["name"] == doc["components"]["securitySchemes"]["apiKeyAuth"]["name"]


def test_aigne_seed_examples_validate(doc):
    text = _seed("003")
    requests = [json.loads(b) for b in re.findall(r"--data '(\{.*?\})'", text, flags=re.S)]
    responses = _json_blocks(text)
    assert len(requests) == 2 and len(responses) == 2
    for body in requests:
        assert problems(doc, _component(doc, "ImageGenerationRequest"), body) == [], body
    for body in responses:
        assert problems(doc, _component(doc, "ImagesResponse"), body) == [], body
    assert "/api/images/generations" in doc["paths"]


def test_agentai_seed_examples_validate(doc):
    seed = _yaml_block(_seed("004"))["paths"]
    request = seed["request"]["body"]["application/json"]["examples"]["example"]["value"]
    response = seed["response"]["200"]["application/json"]["examples"]["example"]["value"]
    assert problems(doc, _component(doc, "AgentAIGenerateImageRequest"), request) == []
    assert problems(doc, _component(doc, "AgentAIGenerateImageResponse"), response) == []
    props = seed["request"]["body"]["application/json"]["schemaArray"][0]["properties"]
    ours = doc["components"]["schemas"]["AgentAIGenerateImageRequest"]["properties"]
    for field, spec in props.items():
        assert ours[field].get("enum") == spec["allOf"][0].get("enum"), field
