"""The artifact store: large outputs (phase outputs, traces, drain3 state, reports) by key.

Keys are slash-separated, e.g. ``investigations/<id>/<phase>-r<round>.json``. Two adapters:
local files (the embedded default) and S3 (boto3; any S3-compatible endpoint).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Protocol

from store.errors import ArtifactError

_KEY = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


def _check_key(key: str) -> str:
    if not _KEY.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise ArtifactError(
            f"artifact key {key!r} is not a relative slash-separated path of [A-Za-z0-9._-] parts; fix the key"
        )
    return key


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str).encode()


class ArtifactStore(Protocol):
    """Where artifacts live. Every method raises :class:`ArtifactError` on failure."""

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str: ...
    def put_json(self, key: str, value: Any) -> str: ...
    def get_bytes(self, key: str) -> bytes: ...
    def get_json(self, key: str) -> Any: ...
    def exists(self, key: str) -> bool: ...
    def url(self, key: str) -> str: ...


class LocalArtifactStore:
    """Artifacts as files under ``root`` (written atomically: temp file + rename)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Write ``data`` at ``key``; returns the key."""
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # write-then-rename so a crash never leaves a half-written artifact behind
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            raise ArtifactError(f"cannot write artifact {key} under {self.root} ({exc}); check PM_HOME") from None
        return key

    def put_json(self, key: str, value: Any) -> str:
        """Write ``value`` as compact JSON at ``key``; returns the key."""
        return self.put_bytes(key, _dumps(value), "application/json")

    def get_bytes(self, key: str) -> bytes:
        """The bytes at ``key``. Raises ArtifactError when missing."""
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ArtifactError(f"artifact {key} does not exist under {self.root}") from None
        except OSError as exc:
            raise ArtifactError(f"cannot read artifact {key} ({exc})") from None

    def get_json(self, key: str) -> Any:
        """The JSON value at ``key``."""
        return json.loads(self.get_bytes(key))

    def exists(self, key: str) -> bool:
        """Whether ``key`` holds an artifact."""
        return self._path(key).is_file()

    def url(self, key: str) -> str:
        """A file:// URL of the artifact."""
        return self._path(key).resolve().as_uri()


class S3ArtifactStore:
    """Artifacts as objects in an S3 bucket (any S3-compatible endpoint)."""

    def __init__(self, bucket: str, endpoint_url: str | None = None, client: Any = None) -> None:
        if client is None:
            import boto3

            client = boto3.client("s3", endpoint_url=endpoint_url)
        self.bucket = bucket
        self.client = client

    def _fail(self, action: str, key: str, exc: Exception) -> ArtifactError:
        return ArtifactError(
            f"cannot {action} s3://{self.bucket}/{key} ({exc}); check S3_BUCKET, S3_ENDPOINT_URL and AWS credentials"
        )

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Upload ``data`` at ``key``; returns the key."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=_check_key(key), Body=data, ContentType=content_type)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("write", key, exc) from None
        return key

    def put_json(self, key: str, value: Any) -> str:
        """Upload ``value`` as compact JSON at ``key``; returns the key."""
        return self.put_bytes(key, _dumps(value), "application/json")

    def get_bytes(self, key: str) -> bytes:
        """The bytes at ``key``. Raises ArtifactError when missing."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=_check_key(key))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise ArtifactError(f"artifact s3://{self.bucket}/{key} does not exist") from None
            raise self._fail("read", key, exc) from None
        except BotoCoreError as exc:
            raise self._fail("read", key, exc) from None

    def get_json(self, key: str) -> Any:
        """The JSON value at ``key``."""
        return json.loads(self.get_bytes(key))

    def exists(self, key: str) -> bool:
        """Whether ``key`` holds an object."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=_check_key(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return False
            raise self._fail("check", key, exc) from None
        except BotoCoreError as exc:
            raise self._fail("check", key, exc) from None

    def url(self, key: str, expires_s: int = 3600) -> str:
        """A presigned GET URL of the object, valid for ``expires_s`` seconds."""
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": _check_key(key)}, ExpiresIn=expires_s
        )


def make_artifact_store(settings: Any) -> ArtifactStore:
    """S3 when S3_BUCKET is set, else files under ``PM_HOME/artifacts``.

    Args:
        settings: a :class:`store.config.Settings`.
    """
    if settings.s3_bucket:
        return S3ArtifactStore(settings.s3_bucket, endpoint_url=settings.s3_endpoint_url)
    return LocalArtifactStore(settings.artifacts_dir)
