import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.errors import VerificationError
from workbench.verify import verify

SECRETS = ["s3cret-current"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer s3cret-current"},
        {"authorization": "bearer s3cret-current"},
        {"AUTHORIZATION": "BEARER s3cret-current"},
        {"Authorization": "  Bearer   s3cret-current  "},
        {"Authorization": b"Bearer s3cret-current"},
        [("Authorization", "Bearer s3cret-current"), ("X-Other", "1")],
    ],
)
def test_accepts_the_secret(headers):
    verify(headers, SECRETS)


def test_rotated_secrets_are_all_active():
    for token in ("old", "new"):
        verify({"Authorization": f"Bearer {token}"}, ["old", "new"])
    with pytest.raises(VerificationError):
        verify({"Authorization": "Bearer older"}, ["old", "new"])


@pytest.mark.parametrize(
    "headers, fragment",
    [
        ({}, "missing Authorization header"),
        ({"Authorization": ""}, "empty Authorization header"),
        ({"Authorization": "s3cret-current"}, "Bearer scheme"),
        ({"Authorization": "Basic czNjcmV0"}, "Bearer scheme"),
        ({"Authorization": "Token s3cret-current"}, "Bearer scheme"),
        # RFC 9110: one or more spaces (not tabs) separate the scheme from the token
        ({"Authorization": "Bearer\ts3cret-current"}, "Bearer scheme"),
        ({"Authorization": "Bearer"}, "no token"),
        ({"Authorization": "Bearer    "}, "no token"),
        ({"Authorization": "Bearer s3cret-curren"}, "does not match"),
        ({"Authorization": "Bearer s3cret-current-and-more"}, "does not match"),
        ({"Authorization": "Bearer S3CRET-CURRENT"}, "does not match"),
        ({"Authorization": "Bearer sécret"}, "does not match"),
        ({"Authorization": b"Bearer \xff\xfe\x00"}, "does not match"),
        ({"Authorization": "Bearer \udcff"}, "does not match"),
        ({"Authorization": None}, "missing Authorization header"),
        ({"Authorization": 12}, "unreadable Authorization header"),
        ([("Authorization", "Bearer a"), ("authorization", "Bearer b")], "more than one"),
    ],
)
def test_rejects_with_a_clear_reason(headers, fragment):
    with pytest.raises(VerificationError) as info:
        verify(headers, SECRETS)
    assert fragment in str(info.value)
    assert "s3cret-current" not in str(info.value)
    assert info.value.http_status == 401


def test_no_secret_configured_rejects_everything():
    with pytest.raises(VerificationError, match="no signing secret"):
        verify({"Authorization": "Bearer "}, [])
    with pytest.raises(VerificationError, match="no signing secret"):
        verify({"Authorization": "Bearer x"}, ["", None])


header_values = st.one_of(
    st.text(), st.binary(), st.none(), st.integers(), st.floats(), st.lists(st.text(), max_size=2)
)
header_names = st.one_of(
    st.sampled_from(["Authorization", "authorization", " AUTHORIZATION "]), st.text(), st.binary(max_size=8)
)


@settings(max_examples=500, deadline=None)
@given(
    st.dictionaries(header_names, header_values, max_size=4),
    st.lists(st.one_of(st.text(), st.binary()), max_size=3),
)
def test_only_our_error_escapes_whatever_arrives(headers, secrets):
    try:
        verify(headers, secrets)
    except VerificationError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1).filter(lambda s: s.strip() == s and " " not in s and "\t" not in s))
def test_any_exact_secret_verifies_and_a_changed_one_does_not(secret):
    verify({"Authorization": f"Bearer {secret}"}, [secret])
    with pytest.raises(VerificationError):
        verify({"Authorization": f"Bearer {secret}x"}, [secret])
