"""Push-cluster authentication, unit level (the HTTP behaviour is in api/test_write_auth.py)."""

from __future__ import annotations

import base64

import pytest

from aggregator.auth import OPEN, Authenticator, Unauthorized
from aggregator.clusterconfig import PushCluster

AUTH = Authenticator(
    [PushCluster(name="edge", token="edge-token"), PushCluster(name="dc", token="dc-token")]
)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_no_clusters_means_open_writes() -> None:
    auth = Authenticator([])
    assert auth.open
    assert auth.authenticate({}) is OPEN
    assert auth.authenticate({"Authorization": "Bearer whatever"}).cluster is None


@pytest.mark.parametrize(
    ("header", "cluster"),
    [
        ("Bearer edge-token", "edge"),
        ("bearer   dc-token ", "dc"),
        (basic("anything", "dc-token"), "dc"),
        (basic("", "edge-token"), "edge"),
        (basic("user", "pass:with:colons"), None),
    ],
)
def test_token_decides_the_cluster(header: str, cluster: str | None) -> None:
    if cluster is None:
        with pytest.raises(Unauthorized, match="invalid token"):
            AUTH.authenticate({"Authorization": header})
    else:
        assert AUTH.authenticate({"Authorization": header}).cluster == cluster


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing credentials"),
        ({"Authorization": ""}, "missing credentials"),
        ({"Authorization": "Bearer wrong"}, "invalid token"),
        ({"Authorization": "Bearer edge-token-and-more"}, "invalid token"),
        ({"Authorization": "Bearer"}, "empty bearer token"),
        ({"Authorization": "Basic !!!"}, "not base64"),
        ({"Authorization": "Basic " + base64.b64encode(b"nocolon").decode()}, "no password"),
        ({"Authorization": basic("edge", "")}, "no password"),
        ({"Authorization": "Digest x"}, "unsupported authorization scheme 'digest'"),
    ],
)
def test_refusals_say_why(headers: dict[str, str], reason: str) -> None:
    with pytest.raises(Unauthorized, match=reason):
        AUTH.authenticate(headers)


def _cert(cn: str, *dns: str) -> dict[str, object]:
    """A verified peer certificate as `ssl` reports it."""
    out: dict[str, object] = {"subject": ((("commonName", cn),),)}
    if dns:
        out["subjectAltName"] = tuple(("DNS", d) for d in dns)
    return out


def test_a_client_certificate_names_its_push_cluster() -> None:
    auth = Authenticator([PushCluster("edge-1", ""), PushCluster("edge-2", "tok-2")])
    assert auth.authenticate({}, _cert("whatever", "edge-1")).cluster == "edge-1"
    assert auth.authenticate({}, _cert("edge-2")).cluster == "edge-2"  # CN when no DNS SAN
    with pytest.raises(Unauthorized, match="names no push cluster"):
        auth.authenticate({}, _cert("edge-1", "other.example"))  # SANs win over the CN
    with pytest.raises(Unauthorized, match=r"names several \(edge-1, edge-2\)"):
        auth.authenticate({}, _cert("x", "edge-1", "edge-2"))
    # A token sent along decides, and a tokenless cluster has no token to guess.
    assert auth.authenticate({"Authorization": "Bearer tok-2"}, _cert("edge-1")).cluster == (
        "edge-2"
    )
    with pytest.raises(Unauthorized):
        auth.authenticate({"Authorization": "Bearer "}, None)
    with pytest.raises(Unauthorized, match="or present its client certificate"):
        auth.authenticate({}, None)
