"""The MQTT contract's documents, made from its typed definitions.

``docs/mqtt-api.md`` is ``docs/mqtt-api.md.in`` with its ``<!-- generated: NAME -->`` markers
filled in (event, command and message tables), and ``docs/schema/`` holds one JSON Schema per
payload. Nothing in either is written by hand, so neither can drift from the code: a test
regenerates both and compares.

    python -m agent.contract.generate          # rewrite docs/mqtt-api.md and docs/schema/
    python -m agent.contract.generate --check  # exit 1 and name what differs
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from agent.contract import messages
from agent.contract.events import EVENT_TYPES
from agent.link import payloads
from agent.link.topics import API_VERSION, HA_TOPICS

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "mqtt-api.md"
TEMPLATE = ROOT / "docs" / "mqtt-api.md.in"
SCHEMA_DIR = ROOT / "docs" / "schema"
SCHEMA_BASE = "https://diemcau.vn/schema/v2/"
MARKER = re.compile(r"<!-- generated: ([a-z_]+) -->")
FILE_OF_TOPIC = {"replies": "reply"}  # a schema names one message, a topic carries many


# --------------------------------------------------------------------------- schemas


def _schema_of(tp: Any) -> dict[str, Any]:
    return TypeAdapter(tp).json_schema(mode="serialization")


def _with_defs(outer: dict[str, Any], inner: dict[str, Any]) -> dict[str, Any]:
    """``inner`` with its ``$defs`` moved to ``outer`` (one schema file, one defs table)."""
    inner = dict(inner)
    defs = inner.pop("$defs", {})
    if defs:
        outer.setdefault("$defs", {}).update(defs)
    return inner


def event_schema(kind: str) -> dict[str, Any]:
    """The whole event message of ``kind``: the envelope with its ``data`` typed."""
    env = _schema_of(messages.EventEnvelope)
    data = _with_defs(env, _schema_of(EVENT_TYPES[kind]))
    data.pop("title", None)
    env["properties"]["kind"] = {"const": kind}
    env["properties"]["data"] = data
    env["title"] = f"event {kind}"
    env["description"] = _doc(EVENT_TYPES[kind])
    return env


def command_schema(name: str) -> dict[str, Any]:
    """The whole command message ``name``: the envelope with its ``args`` typed."""
    env = payloads.CommandEnvelope.model_json_schema()
    args = _with_defs(env, payloads.ARGS[name].model_json_schema())
    args.pop("title", None)
    env["properties"]["name"] = {"const": name}
    env["properties"]["args"] = args
    env["title"] = f"command {name}"
    return env


def schemas() -> dict[str, dict[str, Any]]:
    """Every payload's JSON Schema, by file name under ``docs/schema/``."""
    out: dict[str, dict[str, Any]] = {}
    for topic, model in messages.MESSAGES.items():
        if topic != "events":  # one schema per event kind, below
            out[f"{FILE_OF_TOPIC.get(topic, topic)}.json"] = _schema_of(model)
    for kind in sorted(EVENT_TYPES):
        out[f"event.{kind}.json"] = event_schema(kind)
    for name in sorted(payloads.ARGS):
        out[f"command.{name}.json"] = command_schema(name)
    out["schedule.json"] = payloads.ScheduleIn.model_json_schema()
    for fname, sch in out.items():
        sch["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        sch["$id"] = SCHEMA_BASE + fname
    return out


# --------------------------------------------------------------------------- tables


def _doc(obj: Any) -> str:
    return " ".join((obj.__doc__ or "").split())


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " \\| ".join(names)
    if origin in (list, tuple, Iterable):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        return "object"
    if dataclasses.is_dataclass(tp) or (isinstance(tp, type) and issubclass(tp, BaseModel)):
        return "object"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def _fields(cls: Any) -> list[str]:
    hints = typing.get_type_hints(cls, include_extras=False)
    out = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        optional = type(None) in typing.get_args(tp)
        out.append(f"`{f.name}`{'?' if optional else ''}: {_type_name(tp)}")
    return out


def events_table() -> str:
    rows = ["| kind | data | when |", "|---|---|---|"]
    for kind in sorted(EVENT_TYPES):
        cls = EVENT_TYPES[kind]
        rows.append(f"| `{kind}` | {', '.join(_fields(cls)) or '—'} | {_doc(cls)} |")
    return "\n".join(rows)


def _model_fields(model: type[BaseModel]) -> list[str]:
    out = []
    for name, f in model.model_fields.items():
        req = "" if f.is_required() else "?"
        out.append(f"`{name}`{req}: {_type_name(f.annotation)}")
    return out


def _nested_model(tp: Any) -> type[BaseModel] | None:
    for t in (tp, *typing.get_args(tp)):
        if isinstance(t, type) and issubclass(t, BaseModel):
            return t
        for u in typing.get_args(t):  # dict[str, Model], list[Model]
            if isinstance(u, type) and issubclass(u, BaseModel):
                return u
    return None


def fields_table(model: type[BaseModel]) -> str:
    """Every field of ``model`` and of the models inside it, by dotted path."""
    rows = ["| field | type | meaning |", "|---|---|---|"]

    def walk(m: type[BaseModel], prefix: str, seen: tuple[type, ...]) -> None:
        for name, f in m.model_fields.items():
            inner = _nested_model(f.annotation)
            path = f"{prefix}{name}"
            if typing.get_origin(f.annotation) is dict and inner is not None:
                path += ".<name>"
            typ = "object" if inner is not None and typing.get_origin(
                f.annotation) is not list else _type_name(f.annotation)
            if inner is not None and type(None) in typing.get_args(f.annotation):
                typ += " \\| null"
            rows.append(f"| `{path}` | {typ} | {' '.join((f.description or '').split())} |")
            if inner is not None and inner not in seen:
                walk(inner, path + ".", (*seen, inner))

    walk(model, "", (model,))
    return "\n".join(rows)


def commands_table() -> str:
    rows = ["| name | args | effect |", "|---|---|---|"]
    for name in sorted(payloads.ARGS):
        model = payloads.ARGS[name]
        rows.append(f"| `{name}` | {', '.join(_model_fields(model)) or '—'} | {_doc(model)} |")
    return "\n".join(rows)


def ha_topics_table() -> str:
    """The Home Assistant topics (``agent.link.topics.HA_TOPICS``)."""
    rows = ["| topic | direction | QoS | retained | what |", "|---|---|---|---|---|"]
    for t in HA_TOPICS:
        rows.append(f"| `{t.topic}` | {t.direction} | {t.qos} | "
                    f"{'yes' if t.retained else 'no'} | {t.what} |")
    return "\n".join(rows)


def schema_list() -> str:
    return "\n".join(f"- [`{n}`](schema/{n})" for n in sorted(schemas()))


SECTIONS = {
    "api_version": lambda: API_VERSION,
    "info_fields": lambda: fields_table(messages.Info),
    "state_fields": lambda: fields_table(messages.State),
    "host_fields": lambda: fields_table(messages.Host),
    "envelope_fields": lambda: fields_table(messages.EventEnvelope),
    "reply_fields": lambda: fields_table(messages.Reply),
    "events": events_table,
    "commands": commands_table,
    "ha_topics": ha_topics_table,
    "schemas": schema_list,
}


def render(template: str) -> str:
    """The template with every marker replaced by its generated section."""
    def fill(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in SECTIONS:
            raise KeyError(f"{TEMPLATE.name}: unknown section '{name}'")
        return SECTIONS[name]()
    body = MARKER.sub(fill, template)
    return ("<!-- Generated by `python -m agent.contract.generate` from docs/mqtt-api.md.in and "
            "the typed definitions in agent/contract/: edit those, not this file. -->\n" + body)


def expected_files() -> dict[Path, str]:
    """Every generated file and the text it must hold."""
    files = {DOC: render(TEMPLATE.read_text(encoding="utf-8"))}
    for name, sch in schemas().items():
        files[SCHEMA_DIR / name] = json.dumps(sch, indent=2, ensure_ascii=False) + "\n"
    return files


def drift() -> list[str]:
    """What differs between the generated files and the tree (empty when in step)."""
    want = expected_files()
    problems = [f"{p.relative_to(ROOT)}: out of date" for p, text in want.items()
                if not p.exists() or p.read_text(encoding="utf-8") != text]
    if SCHEMA_DIR.exists():
        extra = {p for p in SCHEMA_DIR.glob("*.json")} - set(want)
        problems += [f"{p.relative_to(ROOT)}: no longer generated" for p in sorted(extra)]
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only say what is out of date")
    args = ap.parse_args(argv)
    if args.check:
        problems = drift()
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
    want = expected_files()
    for p in SCHEMA_DIR.glob("*.json"):
        if p not in want:
            p.unlink()
    for p, text in want.items():
        p.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
