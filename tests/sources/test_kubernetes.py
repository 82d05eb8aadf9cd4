"""The kubernetes changes provider: the official client, a kubeconfig in tmp_path, a Kubernetes API stand-in."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sources.errors import SourceError
from sources.kubernetes import KubernetesProvider
from sources.registry import build_provider
from store.errors import ConfigError
from store.sources_file import parse_sources
from tests.fakes.kube_server import FakeKube

pytestmark = pytest.mark.integration

WINDOW = {"start": "2026-02-20T06:00:00Z", "end": "2026-02-20T10:00:00Z"}
NS = "shop"


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    k = FakeKube().start()
    # checkout-api: revision 1 last week, 2 and 3 inside the window (3 scaled 3 -> 5 by hand an hour later).
    k.add_deployment(NS, "checkout-api", image="reg.example.com:5000/shop/checkout:1.5.0", revision=3)
    k.add_replicaset(NS, "checkout-api", "checkout-api-6d9f8b7c4a", revision=1, created="2026-02-13T08:00:00Z",
                     images={"api": "reg.example.com:5000/shop/checkout:1.3.0"})
    k.add_replicaset(NS, "checkout-api", "checkout-api-7f5c9d8e2b", revision=2, created="2026-02-20T07:00:00Z",
                     images={"api": "reg.example.com:5000/shop/checkout:1.4.0"})
    k.add_replicaset(NS, "checkout-api", "checkout-api-8a1b2c3d4e", revision=3, created="2026-02-20T08:30:00Z",
                     images={"api": "reg.example.com:5000/shop/checkout:1.5.0", "envoy": "envoyproxy/envoy:v1.29"},
                     replicas=5, change_cause="kubectl set image deployment/checkout-api api=...:1.5.0")
    # payments: one rollout in the window (its events are rollout steps, not scaling)
    k.add_deployment(NS, "payments", image="reg/pay@sha256:0123456789abcdef0123", revision=2)
    k.add_replicaset(NS, "payments", "payments-55d6c7b8f9", revision=1, created="2026-02-01T00:00:00Z",
                     images={"pay": "reg/pay:2.0"})
    k.add_replicaset(NS, "payments", "payments-66e7d8c9a0", revision=2, created="2026-02-20T06:45:00Z",
                     images={"pay": "reg/pay@sha256:0123456789abcdef0123"}, replicas=2)
    # a ReplicaSet nobody owns (created by hand) is no rollout
    k.add_replicaset(NS, "", "loose-1", revision=1, created="2026-02-20T07:00:00Z", images={"x": "x:1"})
    k.objects[(NS, "replicasets")][-1]["metadata"]["ownerReferences"] = []
    events = [
        ("checkout-api.a1", "Scaled up replica set checkout-api-7f5c9d8e2b from 0 to 3", "2026-02-20T07:00:02Z"),
        ("checkout-api.a2", "Scaled down replica set checkout-api-6d9f8b7c4a from 3 to 0", "2026-02-20T07:01:00Z"),
        ("checkout-api.a3", "Scaled up replica set checkout-api-8a1b2c3d4e from 0 to 3", "2026-02-20T08:30:01Z"),
        ("checkout-api.a4", "Scaled up replica set checkout-api-8a1b2c3d4e from 3 to 5", "2026-02-20T09:30:00Z"),
        ("payments.b1", "Scaled up replica set payments-66e7d8c9a0 to 2", "2026-02-20T06:45:01Z"),
    ]
    for name, message, ts in events:
        k.add_event(NS, name, reason="ScalingReplicaSet", message=message, ts=ts,
                    object_name=name.split(".")[0])
    k.add_event(NS, "checkout-api-8a1b2c3d4e-x.c1", reason="BackOff", message="Back-off restarting failed container",
                ts="2026-02-20T08:40:00Z", kind="Pod", object_name="checkout-api-8a1b2c3d4e-x", type_="Warning")
    k.add_event(NS, "other.d1", reason="ScalingReplicaSet", message="Scaled up replica set x to 2",
                ts="2026-02-20T08:40:00Z", object_name="x")
    yield k
    k.stop()


def provider(kube: FakeKube, tmp_path: Path, **settings: Any) -> KubernetesProvider:
    kubeconfig = kube.kubeconfig(tmp_path / "kubeconfig", token=settings.pop("token_in_file", None))
    entry = {"kind": "kubernetes", "namespace": NS, "kubeconfig": str(kubeconfig),
             "services": {"checkout-api": "checkout", "payments": "payments"}, **settings}
    entry = {k: v for k, v in entry.items() if v is not None}
    doc = parse_sources({"changes": [entry]}, base_dir=tmp_path)
    p = build_provider(doc.entries[0], doc)
    assert isinstance(p, KubernetesProvider)
    return p


ROLLOUT_2 = {"id": "k8s-shop-checkout-api-2", "ts": "2026-02-20T07:00:00Z", "kind": "deploy", "service": "checkout",
             "author": None, "summary": "rollout of deployment/checkout-api revision 2: 1.4.0",
             "details": {"version": "1.4.0", "previous_version": "1.3.0", "commit": None}}
ROLLOUT_3 = {"id": "k8s-shop-checkout-api-3", "ts": "2026-02-20T08:30:00Z", "kind": "deploy", "service": "checkout",
             "author": None,
             "summary": "rollout of deployment/checkout-api revision 3: api:1.5.0,envoy:v1.29 "
                        "(kubectl set image deployment/checkout-api api=...:1.5.0)",
             "details": {"version": "api:1.5.0,envoy:v1.29", "previous_version": "1.4.0", "commit": None}}
PAY_2 = {"id": "k8s-shop-payments-2", "ts": "2026-02-20T06:45:00Z", "kind": "deploy", "service": "payments",
         "author": None, "summary": "rollout of deployment/payments revision 2: 0123456789ab",
         "details": {"version": "0123456789ab", "previous_version": "2.0", "commit": None}}
SCALED = {"id": "k8s-shop-checkout-api-scale-checkout-api.a4", "ts": "2026-02-20T09:30:00Z", "kind": "infra",
          "service": "checkout", "author": "deployment-controller",
          "summary": "deployment/checkout-api scaled 3 -> 5 replicas",
          "details": {"resource": "deployment/checkout-api", "action": "scaled 3 -> 5"}}


def test_rollouts_and_scaling_exactly(kube: FakeKube, tmp_path: Path) -> None:
    out = provider(kube, tmp_path).call("changes.list", **WINDOW)
    assert out == {"changes": [PAY_2, ROLLOUT_2, ROLLOUT_3, SCALED]}
    # the real client asked the list endpoints, with the bearer token of the kubeconfig (else 401)
    assert any(r.startswith("/apis/apps/v1/namespaces/shop/replicasets?") for r in kube.requests)
    assert any("/api/v1/namespaces/shop/events?fieldSelector=reason%3DScalingReplicaSet" in r for r in kube.requests)


def test_window_service_and_kind_filters(kube: FakeKube, tmp_path: Path) -> None:
    p = provider(kube, tmp_path)
    assert p.call("changes.list", start="2026-02-20T07:00:00Z", end="2026-02-20T08:30:00Z")["changes"] == [ROLLOUT_2]
    assert p.call("changes.list", service="payments", **WINDOW)["changes"] == [PAY_2]
    assert p.call("changes.list", kind="infra", **WINDOW)["changes"] == [SCALED]
    asked = len(kube.requests)
    assert p.call("changes.list", kind="config", **WINDOW) == {"changes": []}
    assert p.call("changes.list", service="search", **WINDOW) == {"changes": []}
    assert len(kube.requests) == asked
    # without a services map every Deployment counts, under its own name
    ids = [c["id"] for c in provider(kube, tmp_path, services=None, include=["rollouts"]).call(
        "changes.list", **WINDOW)["changes"]]
    assert ids == ["k8s-shop-payments-2", "k8s-shop-checkout-api-2", "k8s-shop-checkout-api-3"]


def test_rollback_time_comes_from_the_scale_up_event(kube: FakeKube, tmp_path: Path) -> None:
    # rolling back to revision 1: the controller re-labels its old ReplicaSet revision 4 and scales it up
    rs = kube.objects[(NS, "replicasets")][0]["metadata"]
    rs["annotations"]["deployment.kubernetes.io/revision"] = "4"
    rs["annotations"]["deployment.kubernetes.io/revision-history"] = "1"
    kube.add_event(NS, "checkout-api.a5", reason="ScalingReplicaSet", ts="2026-02-20T09:45:00Z",
                   message="Scaled up replica set checkout-api-6d9f8b7c4a from 0 to 5", object_name="checkout-api")
    kube.add_event(NS, "checkout-api.a6", reason="ScalingReplicaSet", ts="2026-02-20T09:55:00Z",
                   message="Scaled up replica set checkout-api-6d9f8b7c4a from 5 to 7", object_name="checkout-api")
    out = provider(kube, tmp_path, include=["rollouts"]).call("changes.list", service="checkout", **WINDOW)
    last = out["changes"][-1]
    assert (last["id"], last["ts"]) == ("k8s-shop-checkout-api-4", "2026-02-20T09:45:00Z")
    assert last["details"] == {"version": "1.3.0", "previous_version": "api:1.5.0,envoy:v1.29", "commit": None}


def test_pages_past_the_first_and_cap(kube: FakeKube, tmp_path: Path) -> None:
    out = provider(kube, tmp_path, page_size=2).call("changes.list", **WINDOW)
    assert out == {"changes": [PAY_2, ROLLOUT_2, ROLLOUT_3, SCALED]}
    assert sum("replicasets?" in r and "continue=" in r for r in kube.requests) == 2  # 6 ReplicaSets, 2 a page
    cut = provider(kube, tmp_path, page_size=2, max_pages=1).call("changes.list", **WINDOW)
    assert "replicasets stopped after 1 pages of 2; raise max_pages" in cut["truncated"]


def test_a_slow_api_is_cut_at_the_call_budget(kube: FakeKube, tmp_path: Path) -> None:
    p = provider(kube, tmp_path, page_size=2, timeout_s=1)
    kube.delay_s = 0.4  # each page answers in time, but three pages do not fit in one second
    t0 = time.monotonic()
    out = p.call("changes.list", **WINDOW)
    assert time.monotonic() - t0 < 2.0
    assert "replicasets not all read, the call's time (timeout_s: 1) was spent" in out["truncated"]
    assert "events not all read" in out["truncated"]


@pytest.mark.parametrize(("mode", "expected"), [
    ("500", "HTTP 500 listing replicasets: .*etcdserver"),
    ("garbage", "answered something that is not a Kubernetes replicasets list"),
])
def test_vendor_failures_say_what_to_do(kube: FakeKube, tmp_path: Path, mode: str, expected: str) -> None:
    kube.mode = mode
    with pytest.raises(SourceError, match=expected):
        provider(kube, tmp_path).call("changes.list", **WINDOW)


def test_bad_token_unreachable_slow_and_no_kubeconfig(kube: FakeKube, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="HTTP 401 unauthorised listing replicasets; check the token"):
        provider(kube, tmp_path, token_in_file="expired").call("changes.list", **WINDOW)
    p = provider(kube, tmp_path, timeout_s=0.5)
    kube.delay_s = 1.5
    with pytest.raises(SourceError, match="timed out after 0.5s; raise timeout_s"):
        p.call("changes.list", **WINDOW)
    kube.delay_s = 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "dead"
    cfg.write_text((tmp_path / "kubeconfig").read_text().replace(kube.url, f"http://127.0.0.1:{port}"))
    dead = build_provider(*_one({"kind": "kubernetes", "namespace": NS, "kubeconfig": str(cfg)}, tmp_path))
    with pytest.raises(SourceError, match="cannot reach the API server.*check the kubeconfig's server"):
        dead.call("changes.list", **WINDOW)
    missing = build_provider(*_one({"kind": "kubernetes", "namespace": NS, "kubeconfig": "nope.yaml"}, tmp_path))
    with pytest.raises(SourceError, match="cannot load kubeconfig .*nope.yaml"):
        missing.call("changes.list", **WINDOW)


def test_check_and_settings(kube: FakeKube, tmp_path: Path) -> None:
    assert provider(kube, tmp_path).check() == "namespace shop reachable (has deployments)"
    with pytest.raises(ConfigError, match="namespace: required"):
        build_provider(*_one({"kind": "kubernetes"}, tmp_path))
    with pytest.raises(ConfigError, match="include"):
        build_provider(*_one({"kind": "kubernetes", "namespace": NS, "include": ["pods"]}, tmp_path))


def _one(entry: dict[str, Any], tmp_path: Path) -> tuple[Any, Any]:
    doc = parse_sources({"changes": [entry]}, base_dir=tmp_path)
    return doc.entries[0], doc
