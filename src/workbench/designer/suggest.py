"""Mapping suggestions from an export's column profile: which column is the email (and so the
user id), the name, the phone, the avatar, the company domain, the ICP score.

Each field weighs every column by what its cells hold (the profile's kind, its examples), what
its header says, and how full it is; the best column above the field's bar is proposed, with
the reason. Pure functions over `ColumnProfile`s: the designer shows them, and applies the
ones the user accepts with `apply_suggestion`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..clay.profiling import ColumnProfile
from . import draft as d

_DOMAIN = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)+\Z", re.I)
_IMAGE = re.compile(r"\.(jpe?g|png|gif|webp|svg)(\?.*)?\Z", re.I)
_PERSON_NAME = re.compile(r"[^\W\d_][^\W\d_'’.-]*( [^\W\d_][^\W\d_'’.-]*)+\Z")
_NOT_A_PERSON = {"first", "last", "company", "account", "org", "organization", "user", "file", "job"}


def header_words(column: str) -> set[str]:
    """The words of a header, whatever its style: `Work Email`, `work_email`, `workEmail`."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", column)
    return set(re.findall(r"[a-z0-9]+", spaced.lower()))


def _share(profile: ColumnProfile, test: Callable[[str], bool]) -> float:
    examples = [e.strip() for e in profile.examples if e and e.strip()]
    return sum(1 for e in examples if test(e)) / len(examples) if examples else 0.0


def _email(p: ColumnProfile, words: set[str]) -> float:
    held = (
        3.0 if p.kind == "email" else 1.5 if p.kind == "clay_status" and _share(p, lambda e: "@" in e) else 0
    )
    if not held:
        return 0.0
    said = 2.0 * bool(words & {"email", "mail", "e"}) + 0.5 * ("work" in words)
    enrichment = 0.5 * bool(words & {"find", "finder", "enrich", "2"})
    return held + said - enrichment + p.non_empty


def _name(p: ColumnProfile, words: set[str]) -> float:
    if p.kind != "text" or words & _NOT_A_PERSON:
        return 0.0
    looks = _share(p, lambda e: bool(_PERSON_NAME.match(e)) and len(e) < 60)
    return 2.0 * ("name" in words) + 1.0 * ("full" in words) + 1.5 * looks + p.non_empty


def _phone(p: ColumnProfile, words: set[str]) -> float:
    said = 2.0 * bool(words & {"phone", "mobile", "tel", "telephone", "cell"})
    return (3.0 if p.kind == "phone" else 0.0) + said + p.non_empty if p.kind == "phone" or said else 0.0


def _avatar(p: ColumnProfile, words: set[str]) -> float:
    if p.kind != "url":
        return 0.0
    said = 2.0 * bool(words & {"picture", "photo", "avatar", "image", "headshot", "pic", "img"})
    return 1.0 + said + 2.0 * _share(p, lambda e: bool(_IMAGE.search(e))) + p.non_empty


def _domain(p: ColumnProfile, words: set[str]) -> float:
    held = 3.0 * _share(p, lambda e: bool(_DOMAIN.match(e))) + 0.5 * (p.kind == "url")
    said = 2.0 * ("domain" in words) + 1.0 * bool(words & {"website", "site", "web"})
    company = 0.5 * bool(words & {"company", "account", "org", "organization"})
    return held + said + company + p.non_empty if held or said else 0.0


def _score(p: ColumnProfile, words: set[str]) -> float:
    if p.kind != "number":
        return 0.0
    said = 2.0 * bool(words & {"score", "icp", "fit", "rating", "grade", "intent"}) + 1.0 * ("icp" in words)
    scale = _share(p, lambda e: 0 <= float(e) <= 100)
    return 2.0 + said + scale + p.non_empty


@dataclass(frozen=True)
class Field:
    """A field a suggestion fills: where it goes in the config, and how its column is judged."""

    name: str  # what the user reads: "user id", "email", …
    event: str
    action: str
    target: str  # a parameter of the action, or "when" for the mapping's condition
    weigh: Callable[[ColumnProfile, set[str]], float]
    bar: float  # the least weight that makes a suggestion
    as_: str | None = None
    hint: str = ""  # what the user may want to add


FIELDS = (
    Field("user id", "lead.enriched", "users_identify", "id", _email, 4.0),
    Field("email", "lead.enriched", "users_identify", "email", _email, 4.0),
    Field("name", "lead.enriched", "users_identify", "name", _name, 3.5),
    # Mapped as it is, so Knock's own sources can run the mapping too; SMS wants E.164.
    Field(
        "phone",
        "lead.enriched",
        "users_identify",
        "phone_number",
        _phone,
        4.0,
        hint="choose as e164 for SMS channels",
    ),
    Field("avatar URL", "lead.enriched", "users_identify", "avatar", _avatar, 3.5),
    Field("company domain", "account.enriched", "objects_set", "id", _domain, 4.0),
    Field("ICP score", "lead.high_intent", "workflows_trigger", "when", _score, 4.5),
)

# What a mapping a suggestion creates holds besides the suggested parameter (as in mappings/clay.json).
NEW_MAPPING_PARAMS: dict[str, dict[str, Any]] = {
    "users_identify": {"properties": "body"},
    "objects_set": {"collection": {"value": "accounts"}, "properties": "body"},
    "workflows_trigger": {
        "key": {"value": "new-high-intent-lead"},
        "recipients": {"value": ["sales-team"]},
        "data": "body",
    },
}
HIGH_INTENT_THRESHOLD = 80


@dataclass(frozen=True)
class Suggestion:
    field: Field
    column: str
    why: str  # e.g. `kind email, 92% filled`

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.field.event, self.field.action, self.field.target)

    def describe(self) -> str:
        f = self.field
        if f.target == "when":
            what = f"{f.event} → {f.action} when “{self.column}” ≥ {HIGH_INTENT_THRESHOLD}"
        else:
            coerced = f" as {f.as_}" if f.as_ else ""
            what = f"{f.event} → {f.action} `{f.target}` ← “{self.column}”{coerced}"
        return f"{f.name}: {what} ({self.why})"


def suggest(profiles: Sequence[ColumnProfile]) -> list[Suggestion]:
    """The best column for each field, where one clears the field's bar."""
    out = []
    for field in FIELDS:
        weighed = [(field.weigh(p, header_words(p.column)), i, p) for i, p in enumerate(profiles)]
        weight, _, best = max(weighed, key=lambda t: (t[0], -t[1]), default=(0.0, 0, None))
        if best is not None and weight >= field.bar:
            why = f"kind {best.kind}, {best.non_empty:.0%} filled" + (f"; {field.hint}" if field.hint else "")
            out.append(Suggestion(field, best.column, why))
    return out


def _mapping(env: dict, field: Field) -> dict:
    for mapping in env.setdefault("mappings", []):
        if mapping.get("event") == field.event and mapping.get("action") == field.action:
            return mapping
    mapping = {"event": field.event, "action": field.action, "params": dict(NEW_MAPPING_PARAMS[field.action])}
    env["mappings"].append(mapping)
    return mapping


def apply_suggestion(config: dict, environment: str, suggestion: Suggestion, snake) -> dict:
    """Put an accepted suggestion into the draft `config` (adding its column to the body template
    and its mapping when missing); returns the mapping it changed."""
    field = suggestion.field
    template = config.setdefault("clay", {}).setdefault("body_template", {})
    mapping = _mapping(config["environments"][environment], field)
    if field.target == "when":
        path = d.body_path(d.key_for_column(template, suggestion.column, snake))
        kept = [c for c in mapping.get("when", []) if not (isinstance(c, dict) and c.get("path") == path)]
        mapping["when"] = [*kept, {"path": path, "as": "number", "gte": HIGH_INTENT_THRESHOLD}]
        return mapping
    params = mapping.setdefault("params", {})
    params[field.target] = d.spec_from_choice("column", suggestion.column, field.as_, template, snake)
    return mapping


def in_place(config: dict, environment: str, suggestion: Suggestion) -> bool:
    """Whether the config already does what the suggestion proposes."""
    field = suggestion.field
    template = (config.get("clay") or {}).get("body_template") or {}
    keys = [k for k, entry in template.items() if d.template_column(entry) == suggestion.column]
    env = (config.get("environments") or {}).get(environment) or {}
    for mapping in env.get("mappings") or []:
        if mapping.get("event") != field.event or mapping.get("action") != field.action:
            continue
        if field.target == "when":
            paths = {c.get("path") for c in mapping.get("when") or [] if isinstance(c, dict)}
        else:
            spec = (mapping.get("params") or {}).get(field.target)
            paths = {spec if isinstance(spec, str) else (spec or {}).get("path")}
        if any(d.body_path(k) in paths for k in keys):
            return True
    return False
