import pytest
from hypothesis import given
from hypothesis import strategies as st

from workbench.errors import CoercionError
from workbench.paths import MISSING
from workbench.specs import (
    First,
    Literal,
    PathValue,
    Template,
    coerce,
    compile_condition,
    compile_spec,
)

CONTEXT = {
    "body": {
        "email": "jane@acme.com",
        "work_email": "",
        "icp_score": "87",
        "employees": "1,200",
        "ratio": "0.5",
        "active": "Yes",
        "tags": "saas, b2b ,",
        "tags_json": '["a", "b"]',
        "enrichment": '{"industry": "Software", "size": 40}',
        "obj": {"k": 1},
        "company_domain": "acme.com",
        "title": "VP Sales",
        "score_text": "high",
        "list": ["sales", "ops"],
    },
    "headers": {"x-clay-table-id": "t_1"},
}


def spec(raw):
    problems = []
    compiled = compile_spec(raw, problems, "params.x")
    assert not problems, problems
    return compiled


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("body.email", "jane@acme.com"),
        ({"path": "body.icp_score", "as": "number"}, 87),
        ({"path": "body.icp_score", "as": "integer"}, 87),
        ({"path": "body.ratio", "as": "number"}, 0.5),
        ({"path": "body.employees", "as": "integer"}, 1200),
        ({"path": "body.active", "as": "boolean"}, True),
        ({"path": "body.enrichment", "as": "json"}, {"industry": "Software", "size": 40}),
        ({"path": "body.tags", "as": "list"}, ["saas", "b2b"]),
        ({"path": "body.tags_json", "as": "list"}, ["a", "b"]),
        ({"path": "body.obj", "as": "string"}, '{"k":1}'),
        ({"path": "body.missing", "default": "fallback"}, "fallback"),
        ({"path": "body.work_email", "default": "none"}, "none"),
        ({"path": "body.missing"}, MISSING),
        ({"value": ["sales-team"]}, ["sales-team"]),
        ({"value": None}, None),
        ({"template": "acct-{{body.company_domain}}"}, "acct-acme.com"),
        ({"template": "{{ body.title }} at {{body.company_domain}}"}, "VP Sales at acme.com"),
        ({"template": "acct-{{body.missing}}"}, MISSING),
        ({"template": "t-{{headers.x-clay-table-id}}"}, "t-t_1"),
        ({"first": ["body.work_email", "body.email"]}, "jane@acme.com"),
        ({"first": ["body.missing", {"value": "x"}]}, "x"),
        ({"first": ["body.missing", "body.work_email"]}, MISSING),
    ],
)
def test_value_spec_forms(raw, expected):
    assert spec(raw).resolve(CONTEXT) == expected


def test_spec_kinds_and_json_round_trip():
    for raw, kind in [
        ("body.email", PathValue),
        ({"value": 1}, Literal),
        ({"template": "a{{body.email}}"}, Template),
        ({"first": ["body.a", "body.b"]}, First),
    ]:
        compiled = spec(raw)
        assert isinstance(compiled, kind)
        assert spec(compiled.to_json()).resolve(CONTEXT) == compiled.resolve(CONTEXT)


def test_coercion_failure_names_the_path_and_value():
    with pytest.raises(CoercionError) as info:
        spec({"path": "body.score_text", "as": "number"}).resolve(CONTEXT)
    assert "body.score_text" in str(info.value) and '"high"' in str(info.value)


@pytest.mark.parametrize(
    "raw, fragment",
    [
        (5, "expected a path string or an object"),
        ({"path": "body.a", "value": 1}, "exactly one of"),
        ({}, "exactly one of"),
        ({"path": "body.a", "as": "money"}, "unknown coercion"),
        ({"path": "email"}, "did you mean `body.email`"),
        ({"template": "no placeholder"}, "no `{{path}}` placeholder"),
        ({"template": 5}, "must be a string"),
        ({"first": []}, "non-empty list"),
        ({"first": ["body.a", "nope"]}, "params.x.first[1]"),
        ({"path": "body.a", "colour": "red"}, "unknown key(s) colour"),
    ],
)
def test_bad_specs_are_reported_with_their_location(raw, fragment):
    problems = []
    assert compile_spec(raw, problems, "params.x") is None
    assert problems
    assert any(fragment in f"{loc} {msg}" for loc, msg in problems), problems


@pytest.mark.parametrize(
    "value, as_, expected",
    [
        ("87", "number", 87),
        (" 87.5 ", "number", 87.5),
        ("95%", "number", 95),
        (3, "number", 3),
        ("87.0", "integer", 87),
        (4.0, "integer", 4),
        ("no", "boolean", False),
        ("TRUE", "boolean", True),
        (1, "boolean", True),
        (True, "string", "true"),
        (12, "string", "12"),
        ("x", "list", ["x"]),
        (5, "list", [5]),
        ({"a": 1}, "json", {"a": 1}),
    ],
)
def test_coercions(value, as_, expected):
    assert coerce(value, as_) == expected


@pytest.mark.parametrize(
    "value, as_",
    [
        ("abc", "number"),
        ("nan", "number"),
        ("inf", "number"),
        (True, "number"),
        ("87.5", "integer"),
        ("maybe", "boolean"),
        (2, "boolean"),
        ("{bad", "json"),
        ([1], "number"),
    ],
)
def test_coercion_errors(value, as_):
    with pytest.raises(CoercionError) as info:
        coerce(value, as_)
    assert as_ in str(info.value).lower()


@given(
    st.one_of(
        st.text(), st.integers(), st.floats(), st.booleans(), st.none(), st.lists(st.integers(), max_size=3)
    ),
    st.sampled_from(["string", "number", "integer", "boolean", "json", "list"]),
)
def test_coercion_never_raises_anything_but_its_own_error(value, as_):
    try:
        coerce(value, as_)
    except CoercionError:
        pass


def condition(raw):
    problems = []
    compiled = compile_condition(raw, problems, "when[0]")
    assert not problems, problems
    return compiled


@pytest.mark.parametrize(
    "raw, ok",
    [
        ({"path": "body.icp_score", "as": "number", "gte": 80}, True),
        ({"path": "body.icp_score", "gte": 90}, False),
        ({"path": "body.icp_score", "gt": 86}, True),
        ({"path": "body.icp_score", "lt": 87}, False),
        ({"path": "body.icp_score", "lte": 87}, True),
        ({"path": "body.icp_score", "eq": 87}, True),
        ({"path": "body.icp_score", "eq": "87"}, True),
        ({"path": "body.title", "ne": "CEO"}, True),
        ({"path": "body.title", "in": ["VP Sales", "CEO"]}, True),
        ({"path": "body.icp_score", "in": [1, 87]}, True),
        ({"path": "body.title", "contains": "Sales"}, True),
        ({"path": "body.list", "contains": "ops"}, True),
        ({"path": "body.email", "matches": r"@acme\.com$"}, True),
        ({"path": "body.email", "matches": r"^bob"}, False),
        ({"path": "body.email", "exists": True}, True),
        ({"path": "body.work_email", "exists": True}, False),
        ({"path": "body.work_email", "exists": False}, True),
        ({"path": "body.missing", "exists": False}, True),
        ({"path": "body.active", "eq": True}, True),
        ({"path": "headers.x-clay-table-id", "eq": "t_1"}, True),
        # missing or uncoercible values make the condition false
        ({"path": "body.missing", "ne": "x"}, False),
        ({"path": "body.score_text", "as": "number", "gte": 1}, False),
        ({"path": "body.score_text", "gte": 1}, False),
        ({"path": "body.obj", "gt": "a"}, False),
    ],
)
def test_every_operator(raw, ok):
    result = condition(raw).evaluate(CONTEXT)
    assert result.ok is ok
    assert result.reason


def test_condition_reason_says_why():
    result = condition({"path": "body.icp_score", "gte": 90}).evaluate(CONTEXT)
    assert result.reason == "`body.icp_score` is 87, not ≥ 90"
    missing = condition({"path": "body.nope", "eq": 1}).evaluate(CONTEXT)
    assert missing.reason == "`body.nope` is missing"


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ({"path": "body.a"}, "exactly one operator"),
        ({"path": "body.a", "eq": 1, "ne": 2}, "exactly one operator"),
        ({"path": "body.a", "bigger": 1}, "unknown key(s) bigger"),
        ({"eq": 1}, "needs a `path`"),
        ({"path": "body.a", "matches": "("}, "invalid regular expression"),
        ({"path": "body.a", "in": "abc"}, "takes a list"),
        ({"path": "body.a", "exists": "yes"}, "true or false"),
        ({"path": "body.a", "gt": [1]}, "number or a string"),
        ({"path": "body.a", "as": "number", "eq": "abc"}, "does not match `as: number`"),
        ("body.a", "a condition is an object"),
    ],
)
def test_bad_conditions(raw, fragment):
    problems = []
    assert compile_condition(raw, problems, "when[0]") is None
    assert any(fragment in msg for _, msg in problems), problems
