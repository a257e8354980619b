"""The registry in an S3 bucket (AWS S3, MinIO, or any store with S3 conditional writes).

URL: ``s3://<bucket>/<prefix>?endpoint_url=http://host:9000&region=eu-west-1`` (both options
optional; the endpoint also comes from ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``). Credentials
come from the usual AWS chain (environment, profile, instance role).

Create-only writes are ``PutObject`` with ``If-None-Match: *``: the store creates the key only if
it does not exist and answers 412 Precondition Failed otherwise, atomically, so of several
processes creating the same promotion event exactly one succeeds. A PUT is atomic: a reader sees
the whole object or none. The store talks to S3 with botocore, which ``dvc-s3`` (s3fs,
aiobotocore) brings; it is imported only when an ``s3://`` registry is opened.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from ci_ml.errors import BadInputError, CredentialsMissing, ServiceError
from ci_ml.registry.base import Registry
from ci_ml.registry.records import hash_stream

OPTIONS = ("endpoint_url", "region")
MISSING = ("NoSuchKey", "404", "NotFound")
CONFLICT_RETRIES = 5  # 409 ConditionalRequestConflict: a concurrent conditional write is in flight
_SESSION_LOCK = threading.Lock()  # botocore sessions are not thread-safe; clients are
POLICY_HINT = "the registry needs s3:GetObject, s3:PutObject and s3:ListBucket (docs/registry.md)"


class ObjectStoreRegistry(Registry):
    """A registry kept under ``s3://bucket/prefix``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.bucket, self.prefix, options = _parse_url(url)
        self._endpoint = options.get("endpoint_url") or _env_endpoint()
        self._region = options.get("region")
        self._s3: Any = None

    # -- storage primitives -------------------------------------------------------------------

    def _read(self, key: str) -> bytes | None:
        with self._calls("read", key):
            try:
                answer = self._client().get_object(Bucket=self.bucket, Key=self.prefix + key)
            except ClientError as err:
                if _code(err) in MISSING:
                    return None
                raise
            return bytes(answer["Body"].read())

    def _create(self, key: str, data: bytes) -> bool:
        for attempt in range(CONFLICT_RETRIES):
            code = self._put_new(key, data)
            if code is None:
                return True
            if code == "PreconditionFailed":
                # A retried PUT whose first try succeeded also gets 412: then the bytes are ours.
                return self._read(key) == data
            time.sleep(0.05 * 2**attempt)
        raise ServiceError(f"S3 kept answering 409 Conflict for {self._where(key)}; try again")

    def _list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        with self._calls("list", prefix):
            pages = self._client().get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                keys += [o["Key"][len(self.prefix) :] for o in page.get("Contents", [])]
        return [k for k in keys if not k.endswith("/")]

    def _put_file(self, key: str, src: Path, digest: str) -> str:
        if self._exists(key):
            return digest  # objects are named by their content: it holds these bytes
        checksum = base64.b64encode(bytes.fromhex(digest)).decode()
        with self._calls("write", key), src.open("rb") as body:
            try:
                self._client().put_object(
                    Bucket=self.bucket,
                    Key=self.prefix + key,
                    Body=body,
                    IfNoneMatch="*",
                    ChecksumSHA256=checksum,  # S3 refuses the bytes if they do not match
                )
            except ClientError as err:
                if _code(err) == "BadDigest":
                    return "changed while uploading"
                if _code(err) not in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise
        return digest

    def _get_file(self, key: str, dest: Path) -> str:
        with self._calls("read", key):
            answer = self._client().get_object(Bucket=self.bucket, Key=self.prefix + key)
            with dest.open("xb") as out:
                return hash_stream(answer["Body"], out)

    # -- helpers ------------------------------------------------------------------------------

    def _put_new(self, key: str, data: bytes) -> str | None:
        """PUT ``data`` if ``key`` is absent: None on success, else the refusing error code."""
        with self._calls("write", key):
            try:
                self._client().put_object(
                    Bucket=self.bucket,
                    Key=self.prefix + key,
                    Body=data,
                    IfNoneMatch="*",
                    ContentType="application/json",
                )
            except ClientError as err:
                if _code(err) in ("PreconditionFailed", "ConditionalRequestConflict"):
                    return _code(err)
                raise
        return None

    def _exists(self, key: str) -> bool:
        with self._calls("read", key):
            try:
                self._client().head_object(Bucket=self.bucket, Key=self.prefix + key)
            except ClientError as err:
                if _code(err) in MISSING:
                    return False
                raise
        return True

    def _client(self) -> Any:
        """The botocore S3 client, made on first use (one per process)."""
        if self._s3 is None:
            config = Config(
                retries={"mode": "standard"},  # attempts: AWS_MAX_ATTEMPTS, default 3
                connect_timeout=10,
                read_timeout=60,
                s3={"addressing_style": "path"} if self._endpoint else {},
            )
            with _SESSION_LOCK:
                session = _session()
                region = self._region or session.get_config_variable("region") or "us-east-1"
                self._s3 = session.create_client(
                    "s3", region_name=region, endpoint_url=self._endpoint, config=config
                )
        return self._s3

    @contextlib.contextmanager
    def _calls(self, verb: str, key: str) -> Iterator[None]:
        """Turn botocore failures (after its retries) into ci-ml errors that say what to do."""
        try:
            yield
        except NoCredentialsError as err:
            raise CredentialsMissing(
                f"no AWS credentials to {verb} {self._where(key)}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run where an IAM role is attached"
            ) from err
        except ClientError as err:
            raise self._client_error(verb, key, err) from err
        except BotoCoreError as err:
            raise ServiceError(f"cannot {verb} {self._where(key)}: {err}") from err

    def _client_error(self, verb: str, key: str, err: ClientError) -> Exception:
        code, where = _code(err), self._where(key)
        if code == "NoSuchBucket":
            return BadInputError(f"the bucket of registry {self.url} does not exist; create it")
        if code in ("AccessDenied", "403", "Forbidden"):
            return ServiceError(f"access denied to {verb} {where}; {POLICY_HINT}")
        message = err.response.get("Error", {}).get("Message", "")
        return ServiceError(f"cannot {verb} {where}: {code} {message}".rstrip())

    def _where(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"


@functools.cache
def _session() -> Any:
    """One botocore session per process: it caches the S3 service model between clients."""
    return botocore.session.get_session()


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _env_endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def _parse_url(url: str) -> tuple[str, str, dict[str, str]]:
    """Split ``s3://bucket/prefix?options`` into bucket, prefix ('' or ending in '/'), options."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise BadInputError(f"{url!r} is not an S3 registry URL; use s3://<bucket>/<prefix>")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise BadInputError(
            f"unknown option {', '.join(unknown)} in registry URL {url!r}; "
            f"allowed: {', '.join(OPTIONS)}"
        )
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else "", options
