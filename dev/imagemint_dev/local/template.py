"""Read ``template.yaml``: functions, routes, tables, bucket, state machine, with intrinsics resolved."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    pass


def _tag(name: str, split: bool = False) -> Any:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if split and isinstance(value, str):
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        return {name: value}

    return construct


for _short, _full in {
    "Ref": "Ref",
    "Sub": "Fn::Sub",
    "Join": "Fn::Join",
    "If": "Fn::If",
    "Equals": "Fn::Equals",
    "Select": "Fn::Select",
    "Split": "Fn::Split",
    "ImportValue": "Fn::ImportValue",
    "Not": "Fn::Not",
    "FindInMap": "Fn::FindInMap",
    "Condition": "Condition",
    "And": "Fn::And",
    "Or": "Fn::Or",
}.items():
    _Loader.add_constructor(f"!{_short}", _tag(_full))
_Loader.add_constructor("!GetAtt", _tag("Fn::GetAtt", split=True))


def load_yaml(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 - SafeLoader subclass


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # API Gateway syntax: /api/content/templates/{id}
    function: str  # logical id
    route_key: str

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method.upper() != self.method and self.method != "ANY":
            return None
        want = self.path.strip("/").split("/")
        got = path.strip("/").split("/")
        params: dict[str, str] = {}
        for i, seg in enumerate(want):
            if seg.startswith("{") and seg.endswith("+}"):
                params[seg[1:-2]] = "/".join(got[i:])
                return params if len(got) > i else None
            if i >= len(got):
                return None
            if seg.startswith("{") and seg.endswith("}"):
                if not got[i]:
                    return None
                params[seg[1:-1]] = got[i]
            elif seg != got[i]:
                return None
        return params if len(want) == len(got) else None

    @property
    def specificity(self) -> tuple[int, int]:
        segs = self.path.strip("/").split("/")
        return (sum(1 for s in segs if not s.startswith("{")), len(segs))


@dataclass
class FunctionDef:
    logical_id: str
    code_uri: Path
    handler: str
    environment: dict[str, Any]
    timeout: int
    memory: int
    layers: list[str]
    events: dict[str, Any] = field(default_factory=dict)


@dataclass
class Template:
    root: Path
    raw: dict[str, Any]

    @classmethod
    def load(cls, path: Path) -> Template:
        return cls(root=path.parent, raw=load_yaml(path))

    @property
    def resources(self) -> dict[str, Any]:
        return self.raw.get("Resources", {})

    def of_type(self, type_name: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v.get("Type") == type_name}

    def parameter_defaults(self) -> dict[str, str]:
        return {k: str(v.get("Default", "")) for k, v in (self.raw.get("Parameters") or {}).items()}

    def functions(self) -> dict[str, FunctionDef]:
        glob = (self.raw.get("Globals") or {}).get("Function") or {}
        out = {}
        for name, res in self.of_type("AWS::Serverless::Function").items():
            props = res.get("Properties") or {}
            env = dict(((glob.get("Environment") or {}).get("Variables")) or {})
            env.update(((props.get("Environment") or {}).get("Variables")) or {})
            out[name] = FunctionDef(
                logical_id=name,
                code_uri=self.root / str(props.get("CodeUri", glob.get("CodeUri", ""))),
                handler=str(props.get("Handler", glob.get("Handler", ""))),
                environment=env,
                timeout=int(props.get("Timeout", glob.get("Timeout", 3))),
                memory=int(props.get("MemorySize", glob.get("MemorySize", 128))),
                # SAM puts the Globals layers first, then the function's own.
                layers=[
                    lay.get("Ref") if isinstance(lay, dict) else lay
                    for lay in [*glob.get("Layers", []), *props.get("Layers", [])]
                ],
                events=props.get("Events") or {},
            )
        return out

    def layers(self) -> dict[str, Path]:
        return {
            k: self.root / str(v["Properties"]["ContentUri"])
            for k, v in self.of_type("AWS::Serverless::LayerVersion").items()
        }

    def routes(self) -> list[Route]:
        out = []
        for name, fn in self.functions().items():
            for ev in fn.events.values():
                if ev.get("Type") != "HttpApi":
                    continue
                p = ev.get("Properties") or {}
                method = str(p.get("Method", "ANY")).upper()
                path = str(p.get("Path", "/"))
                out.append(Route(method, path, name, f"{method} {path}"))
        return sorted(out, key=lambda r: r.specificity, reverse=True)

    def s3_events(self) -> list[tuple[str, dict[str, Any]]]:
        """(function logical id, event properties) for every S3 event source."""
        out = []
        for name, fn in self.functions().items():
            for ev in fn.events.values():
                if ev.get("Type") == "S3":
                    out.append((name, ev.get("Properties") or {}))
        return out


_SUB = re.compile(r"\$\{([^}]+)\}")


class Resolver:
    """Resolves intrinsic functions against local values of resources and parameters."""

    def __init__(self, refs: dict[str, str], attrs: dict[str, str], pseudo: dict[str, str]) -> None:
        self.refs = refs
        self.attrs = attrs  # "Logical.Attr" -> value
        self.pseudo = pseudo

    def _name(self, name: str) -> str:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.refs:
            return self.refs[name]
        if name in self.attrs:
            return self.attrs[name]
        raise KeyError(f"Cannot resolve {name} locally")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            ((k, v),) = value.items()
            if k == "Ref":
                return self._name(v)
            if k == "Fn::GetAtt":
                return self._name(".".join(v))
            if k == "Fn::Sub":
                text, extra = (v, {}) if isinstance(v, str) else (v[0], self.resolve(v[1]))
                return _SUB.sub(
                    lambda m: str(extra.get(m.group(1)) if m.group(1) in extra else self._name(m.group(1))),
                    text,
                )
            if k == "Fn::Join":
                return str(v[0]).join(str(self.resolve(x)) for x in v[1])
            if k == "Fn::Split":
                return str(self.resolve(v[1])).split(str(v[0]))
            if k == "Fn::Select":
                return self.resolve(v[1])[int(self.resolve(v[0]))]
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value
