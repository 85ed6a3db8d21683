import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.errors import PathError
from workbench.paths import MISSING, compile_path, jsonpath_reference

CONTEXT = {
    "body": {
        "email": "jane@acme.com",
        "Full Name": "Jane Doe",
        "a.b": "dotted",
        'say "hi"': "quoted",
        "contacts": [{"email": "a@x.com"}, {"email": "b@x.com"}, {"phone": "1"}],
        "nested": {"deep": {"value": 0}},
        "nothing": None,
    },
    "headers": {"x-clay-table-id": "t_1"},
}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("body.email", "jane@acme.com"),
        ('body["Full Name"]', "Jane Doe"),
        ("body['Full Name']", "Jane Doe"),
        ('body["a.b"]', "dotted"),
        ('body["say \\"hi\\""]', "quoted"),
        ("body.contacts[0].email", "a@x.com"),
        ("body.contacts[-1].phone", "1"),
        ("body.contacts[*].email", ["a@x.com", "b@x.com"]),
        ("body.nested.deep.value", 0),
        ("body.nothing", None),
        ("body.missing", MISSING),
        ("body.email.more", MISSING),
        ("body.contacts[9]", MISSING),
        ("body.contacts.email", MISSING),
        ("body.contacts[*].fax", MISSING),
        ("headers.x-clay-table-id", "t_1"),
        ("headers.X-Clay-Table-Id", "t_1"),
        ('headers["X-CLAY-TABLE-ID"]', "t_1"),
        ("  body.email  ", "jane@acme.com"),
    ],
)
def test_resolve(text, expected):
    assert compile_path(text).resolve(CONTEXT) == expected


def test_body_alone_is_the_whole_body():
    assert compile_path("body").resolve(CONTEXT) is CONTEXT["body"]


def test_keys_are_case_sensitive_in_the_body():
    assert compile_path("body.Email").resolve(CONTEXT) is MISSING


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("email", "did you mean `body.email`"),
        ("$.body.email", "drop the leading `$`"),
        ("data.email", "paths start with `body` or `headers`"),
        ("body.", "expected a key after `.`"),
        ("body..email", "expected a key after `.`"),
        ("body.Full Name", 'body["Full Name"]'),
        ("body[x]", "write [0], [*]"),
        ('body["open', "unterminated quoted key"),
        ("body.*", "use `[*]`"),
        ("", "empty"),
        ("body[0", "write [0], [*]"),
    ],
)
def test_bad_paths_say_what_to_write(text, fragment):
    with pytest.raises(PathError) as info:
        compile_path(text)
    assert fragment in str(info.value)


def test_non_string_path_is_refused():
    with pytest.raises(PathError):
        compile_path(5)


def test_canonical_text_round_trips():
    for text in ['body["Full Name"]', "body.contacts[*].email", "headers.x-clay-table-id", 'body["a.b"][0]']:
        path = compile_path(text)
        assert compile_path(path.text).steps == path.steps


# -- the fast walk must agree with jsonpath-ng (the reference) ---------------------------

keys = st.one_of(
    st.sampled_from(["email", "Full Name", "a.b", "x", "0", "it's", 'q"uote', "back\\slash", "ü", "*"]),
    st.text(min_size=1, max_size=6),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=12,
)
steps = st.lists(st.one_of(keys, st.integers(min_value=-3, max_value=3)), max_size=4)


def _path_text(parts, wildcard_at=None):
    out = "body"
    for i, part in enumerate(parts):
        if i == wildcard_at:
            out += "[*]"
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += "[" + json.dumps(part) + "]"
    return out


@settings(max_examples=400, deadline=None)
@given(body=st.dictionaries(keys, json_values, max_size=5), parts=steps)
def test_fast_path_agrees_with_jsonpath_ng(body, parts):
    path = compile_path(_path_text(parts))
    assert not path.wildcard
    context = {"body": body, "headers": {}}
    reference = [m.value for m in jsonpath_reference(path).find(context)]
    ours = path.resolve(context)
    assert (ours is MISSING and reference == []) or reference == [ours]


@settings(max_examples=200, deadline=None)
@given(body=st.dictionaries(keys, json_values, max_size=5), parts=steps, data=st.data())
def test_wildcard_paths_resolve_like_jsonpath_ng(body, parts, data):
    at = data.draw(st.integers(min_value=0, max_value=len(parts)))
    path = compile_path(_path_text(parts, wildcard_at=at) + ("[*]" if at == len(parts) else ""))
    assert path.wildcard
    context = {"body": body, "headers": {}}
    reference = [m.value for m in jsonpath_reference(path).find(context)]
    ours = path.resolve(context)
    assert (ours is MISSING and reference == []) or ours == reference


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_arbitrary_text_parses_or_raises_path_error(text):
    try:
        path = compile_path(text)
    except PathError as exc:
        assert str(exc)
    else:
        assert path.root in ("body", "headers")
