"""A stand-in Kubernetes API server on loopback (plain HTTP), for the official ``kubernetes`` client.

Written from the Kubernetes API reference (ReplicaSet, Deployment and core/v1 Event; "API
Concepts: retrieving large results sets in chunks" for ``limit``/``continue``; field and label
selectors). It serves the namespaced lists:

* ``GET /apis/apps/v1/namespaces/{ns}/replicasets``   ``ReplicaSetList``
* ``GET /apis/apps/v1/namespaces/{ns}/deployments``   ``DeploymentList``
* ``GET /api/v1/namespaces/{ns}/events``              ``EventList`` (``fieldSelector`` on ``reason``,
  ``type``, ``involvedObject.kind``/``name``)

each with ``limit`` and an opaque ``continue`` token in the list's ``metadata``, and
``labelSelector`` (``k=v`` terms). Requests must carry ``Authorization: Bearer <token>``
(401 ``Status`` otherwise). Test controls: :attr:`mode` (``"500"``, ``"garbage"``),
:attr:`delay_s`; paths asked are recorded in :attr:`requests`.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.fakes.loopback import LoopbackServer, QuietHandler

_PATH = re.compile(r"^/(api/v1|apis/apps/v1)/namespaces/([^/]+)/(replicasets|deployments|events)$")
_KINDS = {"replicasets": ("apps/v1", "ReplicaSetList"), "deployments": ("apps/v1", "DeploymentList"),
          "events": ("v1", "EventList")}


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


class FakeKube(LoopbackServer):
    """The server's state: objects per namespace and resource, the token, failure modes."""

    thread_name = "fake-kube"

    def __init__(self, token: str = "k8s-token") -> None:
        super().__init__()
        self.token = token
        self.objects: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.requests: list[str] = []
        self.mode: str | None = None
        self.delay_s = 0.0
        self._lock = threading.Lock()
        self._rv = 1000

    # -- test controls ---------------------------------------------------------------------------
    def _add(self, ns: str, resource: str, obj: dict[str, Any]) -> None:
        self._rv += 1
        obj["metadata"].setdefault("resourceVersion", str(self._rv))
        obj["metadata"].setdefault("uid", str(uuid.uuid4()))
        obj["metadata"]["namespace"] = ns
        self.objects.setdefault((ns, resource), []).append(obj)

    def add_deployment(self, ns: str, name: str, *, image: str, replicas: int = 3, revision: int = 1,
                       created: str = "2026-01-01T00:00:00Z") -> None:
        """A Deployment (its current revision in the annotation, as the controller sets it)."""
        self._add(ns, "deployments", {
            "metadata": {"name": name, "creationTimestamp": created, "generation": revision,
                         "labels": {"app": name}, "annotations": {"deployment.kubernetes.io/revision": str(revision)}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": name, "image": image}]}}},
            "status": {"replicas": replicas, "readyReplicas": replicas, "observedGeneration": revision}})

    def add_replicaset(self, ns: str, deployment: str, name: str, *, revision: int, created: str,
                       images: dict[str, str], replicas: int = 0, change_cause: str | None = None,
                       revision_history: str | None = None) -> None:
        """A ReplicaSet owned by ``deployment`` (``images``: container name -> image)."""
        annotations = {"deployment.kubernetes.io/revision": str(revision),
                       "deployment.kubernetes.io/desired-replicas": str(replicas),
                       "deployment.kubernetes.io/max-replicas": str(replicas + 1)}
        if change_cause:
            annotations["kubernetes.io/change-cause"] = change_cause
        if revision_history:
            annotations["deployment.kubernetes.io/revision-history"] = revision_history
        pod_hash = name.rsplit("-", 1)[-1]
        labels = {"app": deployment, "pod-template-hash": pod_hash}
        self._add(ns, "replicasets", {
            "metadata": {"name": name, "creationTimestamp": created, "labels": labels, "annotations": annotations,
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment,
                                              "uid": f"uid-{deployment}", "controller": True,
                                              "blockOwnerDeletion": True}]},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": c, "image": i} for c, i in images.items()]}}},
            "status": {"replicas": replicas, "observedGeneration": 1}})

    def add_event(self, ns: str, name: str, *, reason: str, message: str, ts: str, kind: str = "Deployment",
                  object_name: str = "", component: str = "deployment-controller", type_: str = "Normal",
                  count: int = 1) -> None:
        """A core/v1 Event about ``kind/object_name`` (first and last seen at ``ts``)."""
        self._add(ns, "events", {
            "metadata": {"name": name, "creationTimestamp": ts},
            "involvedObject": {"kind": kind, "namespace": ns, "name": object_name,
                               "apiVersion": "apps/v1" if kind in ("Deployment", "ReplicaSet") else "v1"},
            "reason": reason, "message": message, "source": {"component": component},
            "firstTimestamp": ts, "lastTimestamp": ts, "count": count, "type": type_,
            "eventTime": None, "reportingComponent": component, "reportingInstance": ""})

    def kubeconfig(self, path: Path, *, token: str | None = None, namespace: str = "default") -> Path:
        """Write a kubeconfig pointing at this server (bearer token auth) and return its path."""
        doc = {"apiVersion": "v1", "kind": "Config", "preferences": {},
               "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
               "users": [{"name": "tester", "user": {"token": token or self.token}}],
               "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester", "namespace": namespace}}],
               "current-context": "fake"}
        path.write_text(json.dumps(doc), encoding="utf-8")  # JSON is YAML
        return path

    # -- request handling (called by the handler) --------------------------------------------------
    def answer(self, handler: BaseHTTPRequestHandler) -> tuple[int, bytes, str]:
        parsed = urlparse(handler.path)
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        with self._lock:
            self.requests.append(parsed.path + (f"?{parsed.query}" if parsed.query else ""))
        if self.delay_s:
            time.sleep(self.delay_s)
        if handler.headers.get("Authorization", "") != f"Bearer {self.token}":
            return self._json(401, _status(401, "Unauthorized", "Unauthorized"))
        if self.mode == "500":
            return self._json(500, _status(500, "InternalError", "etcdserver: request timed out"))
        if self.mode == "garbage":
            return 200, b"<html>503 upstream connect error</html>", "text/html"
        m = _PATH.match(parsed.path)
        if m is None:
            return self._json(404, _status(404, "NotFound", "the server could not find the requested resource"))
        group, ns, resource = m.groups()
        if _KINDS[resource][0] != ("v1" if group == "api/v1" else "apps/v1"):
            return self._json(404, _status(404, "NotFound", "the server could not find the requested resource"))
        items = list(self.objects.get((ns, resource), []))
        items = [o for o in items if _matches_fields(o, query.get("fieldSelector", ""))]
        items = [o for o in items if _matches_labels(o, query.get("labelSelector", ""))]
        items.sort(key=lambda o: o["metadata"]["name"])
        offset = 0
        if query.get("continue"):
            try:
                offset = int(base64.b64decode(query["continue"]).decode().split(":")[1])
            except (ValueError, IndexError):
                return self._json(400, _status(400, "BadRequest", "continue key is not valid"))
        limit = int(query.get("limit", "0") or 0)
        chunk = items[offset: offset + limit] if limit else items[offset:]
        meta: dict[str, Any] = {"resourceVersion": str(self._rv)}
        if limit and offset + limit < len(items):
            meta["continue"] = base64.b64encode(f"{self._rv}:{offset + limit}".encode()).decode()
            meta["remainingItemCount"] = len(items) - offset - limit
        api_version, kind = _KINDS[resource]
        item_kind = kind.removesuffix("List")
        body = {"kind": kind, "apiVersion": api_version, "metadata": meta,
                "items": [{"kind": item_kind, "apiVersion": api_version, **o} for o in chunk]}
        return self._json(200, body)

    @staticmethod
    def _json(status: int, body: Any) -> tuple[int, bytes, str]:
        return status, json.dumps(body).encode(), "application/json"


def _field(obj: dict[str, Any], path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _matches_fields(obj: dict[str, Any], selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        if "!=" in term:
            key, want = term.split("!=", 1)
            if str(_field(obj, key)) == want:
                return False
        else:
            key, want = term.replace("==", "=").split("=", 1)
            if str(_field(obj, key)) != want:
                return False
    return True


def _matches_labels(obj: dict[str, Any], selector: str) -> bool:
    labels = obj["metadata"].get("labels") or {}
    for term in filter(None, selector.split(",")):
        key, _, want = term.replace("==", "=").partition("=")
        if labels.get(key) != want:
            return False
    return True


class _Handler(QuietHandler):
    state: FakeKube

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        status, body, ctype = self.state.answer(self)
        self.reply(status, {"Content-Type": ctype}, body)


FakeKube.handler = _Handler
