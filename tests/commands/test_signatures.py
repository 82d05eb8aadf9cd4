"""Signature checks against the vendors' documented schemes and a published HMAC test vector."""

import pytest

from commands.signatures import (
    SignatureError,
    parse_api_keys,
    sign,
    verify_bearer,
    verify_jira,
    verify_pagerduty,
)

# RFC 4231 section 4.3 (test case 2): HMAC-SHA256 with key "Jefe".
RFC4231_KEY = "Jefe"
RFC4231_DATA = b"what do ya want for nothing?"
RFC4231_MAC = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_sign_matches_rfc4231_vector():
    assert sign(RFC4231_DATA, RFC4231_KEY) == RFC4231_MAC


def test_jira_accepts_sha256_prefixed_signature_of_raw_body():
    verify_jira(RFC4231_DATA, f"sha256={RFC4231_MAC}", RFC4231_KEY)
    verify_jira(RFC4231_DATA, f"SHA256={RFC4231_MAC.upper()}", RFC4231_KEY)


@pytest.mark.parametrize(
    "header, needle",
    [
        (None, "missing X-Hub-Signature"),
        ("", "missing X-Hub-Signature"),
        (f"sha1={RFC4231_MAC}", "sha256=<hex>"),
        ("sha256=", "sha256=<hex>"),
        ("sha256=" + "0" * 64, "does not match"),
    ],
)
def test_jira_rejects_bad_headers(header, needle):
    with pytest.raises(SignatureError, match=needle):
        verify_jira(RFC4231_DATA, header, RFC4231_KEY)


def test_jira_rejects_a_body_changed_by_one_byte():
    with pytest.raises(SignatureError):
        verify_jira(RFC4231_DATA + b" ", f"sha256={RFC4231_MAC}", RFC4231_KEY)


def test_pagerduty_accepts_any_of_several_v1_signatures_during_rotation():
    other = "v1=" + "a" * 64
    verify_pagerduty(RFC4231_DATA, f"{other},v1={RFC4231_MAC}", RFC4231_KEY)
    verify_pagerduty(RFC4231_DATA, f"v1={RFC4231_MAC}, {other}", RFC4231_KEY)


@pytest.mark.parametrize(
    "header, needle",
    [
        (None, "missing X-PagerDuty-Signature"),
        (f"v0={RFC4231_MAC}", "no 'v1=<hex>'"),
        ("v1=" + "b" * 64 + ",v1=" + "c" * 64, "does not match"),
    ],
)
def test_pagerduty_rejects_bad_headers(header, needle):
    with pytest.raises(SignatureError, match=needle):
        verify_pagerduty(RFC4231_DATA, header, RFC4231_KEY)


def test_pagerduty_rejects_wrong_secret():
    with pytest.raises(SignatureError):
        verify_pagerduty(RFC4231_DATA, f"v1={RFC4231_MAC}", "not-jefe")


def test_bearer_tokens():
    keys = parse_api_keys(" k1 , ,k2")
    assert keys == ("k1", "k2")
    verify_bearer("Bearer k2", keys)
    verify_bearer("bearer  k1", keys)
    for header in (None, "", "Basic k1", "Bearer ", "Bearer k3"):
        with pytest.raises(SignatureError):
            verify_bearer(header, keys)
    with pytest.raises(SignatureError, match="no API_KEYS configured"):
        verify_bearer("Bearer k1", ())
