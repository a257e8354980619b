"""Tests for ci_ml.registry: one behavioural suite run against every backend.

The S3 backend talks to a real moto server on loopback (see ``moto_endpoint``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ci_ml.errors import BadInputError, ConflictError, ModelFileError, ServiceError
from ci_ml.registry import ModelVersion, PromotionEvent, Registry, open_registry
from ci_ml.registry.local import LocalRegistry

BACKENDS = ["local", "s3"]
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}
AWS_UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


# -- fixtures -------------------------------------------------------------------------------------


def _serialized(app: Callable[..., Any]) -> Callable[..., Any]:
    """Handle one request at a time.

    Real S3 decides ``If-None-Match: *`` atomically; moto checks and then stores without a lock,
    so concurrent requests could both pass its check. Serializing them gives the atomicity the
    registry relies on, so a race test fails only for the registry's own faults.
    """
    lock = threading.Lock()

    def handle(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with lock:
            return list(app(environ, start_response))

    return handle


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port, with dummy credentials in the environment."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = _serialized(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    quiet = logging.getLogger("werkzeug")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in AWS_ENV.items():
            mp.setenv(name, value)
        for name in AWS_UNSET:
            mp.delenv(name, raising=False)
        thread.start()
        yield f"http://127.0.0.1:{server.server_port}"
        server.shutdown()
        thread.join()
        server.server_close()
    quiet.setLevel(level)


@pytest.fixture(scope="session")
def s3_admin(moto_endpoint: str) -> Iterator[Any]:
    """A plain botocore client for arranging and inspecting buckets."""
    import botocore.session

    session = botocore.session.get_session()
    client = session.create_client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    yield client
    client.close()


def new_bucket(s3_admin: Any) -> str:
    bucket = f"reg-{uuid.uuid4().hex[:12]}"
    s3_admin.create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(params=BACKENDS)
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a new, empty registry of each backend."""
    if request.param == "local":
        return str(tmp_path / "registry")
    endpoint = request.getfixturevalue("moto_endpoint")
    bucket = new_bucket(request.getfixturevalue("s3_admin"))
    return f"s3://{bucket}/team/models?endpoint_url={endpoint}"


@pytest.fixture
def registry(registry_url: str) -> Registry:
    return open_registry(registry_url)


def make_model(folder: Path, content: bytes, **extra: str) -> dict[str, Path]:
    """Write a model file (and optional side files) into ``folder``; return name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"model.skops": folder / "model.skops"}
    files["model.skops"].write_bytes(content)
    for name, text in extra.items():
        files[name] = folder / name
        files[name].write_text(text)
    return files


@pytest.fixture
def register(registry: Registry, tmp_path: Path) -> Callable[..., ModelVersion]:
    """Register a model with the given content (and metadata) in the registry under test."""

    def _register(content: bytes, metadata: dict[str, Any] | None = None) -> ModelVersion:
        folder = tmp_path / "models" / uuid.uuid4().hex
        files = make_model(folder, content, **{"model.json": '{"params": {}}'})
        return registry.register(files, metadata or {}, by="tester")

    return _register


def plant(registry: Registry, key: str, data: bytes) -> None:
    """Write ``key`` behind the registry's back (a damaged or tampered store)."""
    if isinstance(registry, LocalRegistry):
        (registry.path / key).unlink(missing_ok=True)
        (registry.path / key).parent.mkdir(parents=True, exist_ok=True)
        (registry.path / key).write_bytes(data)
        return
    from ci_ml.registry.objectstore import ObjectStoreRegistry

    assert isinstance(registry, ObjectStoreRegistry)
    registry._client().put_object(Bucket=registry.bucket, Key=registry.prefix + key, Body=data)


# -- register / get / list ------------------------------------------------------------------------


def test_register_addresses_the_version_by_the_model_digest(registry: Registry, tmp_path: Path):
    files = make_model(tmp_path / "m", b"weights", **{"model.json": "{}"})
    version = registry.register(files, {"metrics": {"f1": 0.9}}, by="ci")
    digest = hashlib.sha256(b"weights").hexdigest()
    assert version.digest == digest
    assert version.version == digest[:12]
    assert version.registered_by == "ci"
    assert version.metadata == {"metrics": {"f1": 0.9}}
    assert set(version.files) == {"model.skops", "model.json"}
    assert datetime.fromisoformat(version.created_at).utcoffset() is not None
    assert registry.get(version.version) == version


def test_register_is_idempotent_per_model_digest(register: Callable[..., ModelVersion]):
    first = register(b"same bytes", {"run": 1})
    again = register(b"same bytes", {"run": 2})
    assert again == first
    assert again.metadata == {"run": 1}


def test_register_names_another_model_file(registry: Registry, tmp_path: Path):
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"onnx graph")
    version = registry.register({"model.onnx": onnx}, {}, by="ci", model_file="model.onnx")
    assert version.digest == hashlib.sha256(b"onnx graph").hexdigest()
    assert version.files == ("model.onnx",)


@pytest.mark.parametrize(
    ("files", "metadata", "error", "words"),
    [
        ({"model.json": "x"}, {}, BadInputError, "'model.skops' is not among"),
        ({"model.skops": "x", "a/b": "x"}, {}, BadInputError, "not a plain file name"),
        ({"model.skops": "x"}, {"bad": object()}, BadInputError, "metadata cannot be stored"),
        ({"model.skops": "x"}, {"f1": float("nan")}, BadInputError, "not NaN"),
        ({"model.skops": None}, {}, ModelFileError, "is not a file"),
    ],
)
def test_register_refuses_bad_input_and_writes_nothing(
    registry: Registry,
    tmp_path: Path,
    files: dict[str, str | None],
    metadata: dict[str, Any],
    error: type[Exception],
    words: str,
):
    paths = {}
    for name, text in files.items():
        paths[name] = tmp_path / name.replace("/", "_")
        if text is not None:
            paths[name].write_text(text)
    with pytest.raises(error, match=words):
        registry.register(paths, metadata, by="ci")
    assert registry.list_versions() == []


def test_get_accepts_the_version_or_the_full_digest(
    registry: Registry, register: Callable[..., ModelVersion]
):
    version = register(b"m")
    digest = version.digest
    for ref in (version.version, digest, f"sha256:{digest}", digest.upper(), f" {digest}\n"):
        assert registry.get(ref) == version


@pytest.mark.parametrize("ref", ["0123456789ab", "0" * 64])
def test_get_unknown_version_says_how_to_list_versions(registry: Registry, ref: str):
    with pytest.raises(BadInputError, match=rf"{ref}.*not in the registry.*ci-ml registry list"):
        registry.get(ref)


@pytest.mark.parametrize("ref", ["latest", "abc", "z" * 12, "0" * 20])
def test_get_refuses_what_is_not_a_version(registry: Registry, ref: str):
    with pytest.raises(BadInputError, match="is not a model version"):
        registry.get(ref)


def test_get_with_a_digest_that_only_shares_the_prefix(
    registry: Registry, register: Callable[..., ModelVersion]
):
    version = register(b"m")
    with pytest.raises(BadInputError, match="not in the registry"):
        registry.get(version.version + "f" * 52)


def test_list_versions_is_newest_first(registry: Registry, register: Callable[..., ModelVersion]):
    assert registry.list_versions() == []
    made = [register(f"model {i}".encode()) for i in range(3)]
    assert registry.list_versions() == made[::-1]


# -- production -----------------------------------------------------------------------------------


def test_an_empty_registry_has_no_production(registry: Registry):
    assert registry.get_production() is None
    assert registry.history() == []


def test_first_promotion_expects_an_empty_production(
    registry: Registry, register: Callable[..., ModelVersion]
):
    version = register(b"m1")
    event = registry.promote(version.version, None, by="deploy", record={"verdict": "pass"})
    assert event == PromotionEvent(
        seq=1,
        version=version.version,
        digest=version.digest,
        previous=None,
        at=event.at,
        by="deploy",
        action="promote",
        record={"verdict": "pass"},
    )
    assert registry.get_production() == version
    assert registry.history() == [event]


def test_promote_and_rollback_keep_the_full_history(
    registry: Registry, register: Callable[..., ModelVersion]
):
    one, two = register(b"m1"), register(b"m2")
    registry.promote(one.version, None, by="a")
    registry.promote(two.digest, one.digest, by="b")  # full digests work too
    registry.promote(one.version, two.version, by="c", action="rollback")
    history = registry.history()
    assert [e.seq for e in history] == [1, 2, 3]
    assert [e.version for e in history] == [one.version, two.version, one.version]
    assert [e.previous for e in history] == [None, one.version, two.version]
    assert [e.action for e in history] == ["promote", "promote", "rollback"]
    assert [e.record for e in history] == [{}, {}, {}]
    assert registry.get_production() == one


@pytest.mark.parametrize("expected", [None, "wrong"])
def test_promote_refuses_when_production_is_not_what_was_expected(
    registry: Registry, register: Callable[..., ModelVersion], expected: str | None
):
    one, two, three = register(b"m1"), register(b"m2"), register(b"m3")
    registry.promote(one.version, None, by="a")
    expected_version = None if expected is None else two.version
    with pytest.raises(ConflictError) as caught:
        registry.promote(three.version, expected_version, by="b")
    message = str(caught.value)
    assert f"production is {one.version} now" in message
    assert (expected_version or "an empty production") in message
    assert "run the gates again" in message
    assert len(registry.history()) == 1


def test_promote_expecting_a_model_when_production_is_empty(
    registry: Registry, register: Callable[..., ModelVersion]
):
    one = register(b"m1")
    with pytest.raises(ConflictError, match="production is empty"):
        registry.promote(one.version, one.version, by="a")


def test_promote_loses_a_race_to_a_concurrent_promotion(
    registry: Registry, register: Callable[..., ModelVersion], monkeypatch: pytest.MonkeyPatch
):
    one, two, three = register(b"m1"), register(b"m2"), register(b"m3")
    registry.promote(one.version, None, by="a")
    stale = registry.history()[-1]
    registry.promote(two.version, one.version, by="b")
    # This process read the head just before the other promotion created event 2.
    reads = iter([stale])
    real_head = registry._head
    monkeypatch.setattr(registry, "_head", lambda: next(reads, None) or real_head())
    with pytest.raises(ConflictError, match=rf"won the race.*production is {two.version} now"):
        registry.promote(three.version, one.version, by="c")
    assert [e.version for e in registry.history()] == [one.version, two.version]


def test_promote_refuses_bad_input(registry: Registry, register: Callable[..., ModelVersion]):
    one = register(b"m1")
    with pytest.raises(BadInputError, match="not in the registry"):
        registry.promote("0123456789ab", None, by="a")
    with pytest.raises(BadInputError, match="unknown action 'deploy'"):
        registry.promote(one.version, None, by="a", action="deploy")
    with pytest.raises(BadInputError, match="decision record cannot be stored"):
        registry.promote(one.version, None, by="a", record={"when": datetime.now()})
    assert registry.history() == []


# -- fetch ----------------------------------------------------------------------------------------


def test_fetch_copies_and_verifies_every_file(
    registry: Registry, register: Callable[..., ModelVersion], tmp_path: Path
):
    version = register(b"the weights")
    got = registry.fetch(version.version, tmp_path / "out")
    assert set(got) == {"model.skops", "model.json"}
    assert got["model.skops"].read_bytes() == b"the weights"
    assert got["model.json"].read_text() == '{"params": {}}'
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.json", "model.skops"]


def test_fetch_unknown_version(registry: Registry, tmp_path: Path):
    with pytest.raises(BadInputError, match="not in the registry"):
        registry.fetch("0123456789ab", tmp_path / "out")


def test_fetch_refuses_a_corrupt_file_and_leaves_nothing(
    registry: Registry, register: Callable[..., ModelVersion], tmp_path: Path
):
    version = register(b"the weights")
    plant(registry, f"objects/sha256/{version.digest}", b"bit rot")
    with pytest.raises(ModelFileError, match=rf"model.skops .* corrupt.*{version.digest}"):
        registry.fetch(version.version, tmp_path / "out")
    assert not (tmp_path / "out" / "model.skops").exists()
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".part")]


def test_records_are_readable_json(registry: Registry, register: Callable[..., ModelVersion]):
    version = register(b"m1", {"git_sha": "abc"})
    registry.promote(version.version, None, by="a")
    record = json.loads(registry._read(f"versions/{version.version}.json") or b"")
    assert record["metadata"] == {"git_sha": "abc"}
    assert record["files"]["model.skops"]["sha256"] == version.digest
    assert json.loads(registry._read("production/000001.json") or b"")["seq"] == 1


@pytest.mark.parametrize(
    ("data", "words"),
    [(b"{not json", "not valid JSON"), (b'{"seq": 1, "version": "x"}', "lacks digest, previous")],
)
def test_a_damaged_event_is_a_service_error(registry: Registry, data: bytes, words: str):
    plant(registry, "production/000001.json", data)
    with pytest.raises(ServiceError, match=rf"production/000001.json .*{words}.*restore it"):
        registry.history()


def test_listings_ignore_foreign_keys(registry: Registry, register: Callable[..., ModelVersion]):
    version = register(b"m1")
    registry.promote(version.version, None, by="a")
    for key in ("production/README.md", "production/notes.json", "versions/latest.json"):
        plant(registry, key, b"not a registry record")
    assert registry.list_versions() == [version]
    assert [e.seq for e in registry.history()] == [1]


def test_value_types_are_frozen():
    event = PromotionEvent(1, "v", "d", None, "t", "b", "promote", {})
    with pytest.raises(AttributeError):
        event.seq = 2  # type: ignore[misc]


# -- local backend --------------------------------------------------------------------------------


def test_open_registry_resolves_local_paths(tmp_path: Path):
    assert isinstance(open_registry("reg", root=tmp_path), LocalRegistry)
    assert open_registry("reg", root=tmp_path).url == str(tmp_path / "reg")
    assert open_registry(f"file://{tmp_path}/reg").url == str(tmp_path / "reg")
    assert open_registry("file://reg", root=tmp_path).url == str(tmp_path / "reg")
    assert open_registry(str(tmp_path / "abs"), root=Path("/elsewhere")).url == str(
        tmp_path / "abs"
    )


@pytest.mark.parametrize("url", ["gs://bucket/models", "ftp://host/x", "  "])
def test_open_registry_refuses_unknown_schemes(url: str):
    with pytest.raises(BadInputError, match=r"s3://|empty"):
        open_registry(url)


def test_local_leftovers_of_killed_writers_are_ignored_and_cleaned(
    tmp_path: Path,
):
    registry = LocalRegistry(tmp_path / "reg")
    (tmp_path / "reg" / "tmp").mkdir(parents=True)
    stale = tmp_path / "reg" / "tmp" / "dead.tmp"
    fresh = tmp_path / "reg" / "tmp" / "busy.tmp"
    for leftover in (stale, fresh):
        leftover.write_bytes(b"half a model")
    old = time.time() - 2 * 24 * 3600
    os.utime(stale, (old, old))
    assert registry.list_versions() == []
    registry.register(make_model(tmp_path / "m", b"m1"), {}, by="ci")
    assert not stale.exists()
    assert fresh.exists()  # may belong to a writer still at work
    assert sorted(p.name for p in (tmp_path / "reg" / "tmp").iterdir()) == ["busy.tmp"]


def test_local_write_failure_is_a_service_error(tmp_path: Path):
    (tmp_path / "reg").write_text("a file where the registry should be")
    registry = LocalRegistry(tmp_path / "reg")
    assert registry.list_versions() == []
    with pytest.raises(ServiceError, match="cannot write"):
        registry.register(make_model(tmp_path / "m", b"m1"), {}, by="ci")


# -- S3 backend -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("s3:///models", "not an S3 registry URL"),
        ("s3://bucket/models?endpoint=http://x", "unknown option endpoint"),
    ],
)
def test_s3_url_errors(url: str, words: str):
    with pytest.raises(BadInputError, match=words):
        open_registry(url)


def test_s3_endpoint_from_the_environment(
    moto_endpoint: str, s3_admin: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    bucket = new_bucket(s3_admin)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    registry = open_registry(f"s3://{bucket}")
    version = registry.register(make_model(tmp_path, b"m1"), {}, by="ci")
    keys = s3_admin.list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(k["Key"] for k in keys) == [
        f"objects/sha256/{version.digest}",
        f"versions/{version.version}.json",
    ]


def test_s3_missing_bucket_is_bad_input(moto_endpoint: str):
    registry = open_registry(f"s3://no-such-bucket-here?endpoint_url={moto_endpoint}")
    with pytest.raises(BadInputError, match="does not exist"):
        registry.list_versions()


def test_s3_unreachable_store_is_a_service_error(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    registry = open_registry("s3://bucket/models?endpoint_url=http://127.0.0.1:9")
    with pytest.raises(ServiceError, match="cannot list s3://bucket/models/production/"):
        registry.get_production()


def test_s3_retried_create_that_had_succeeded_counts_as_won(moto_endpoint: str, s3_admin: Any):
    """A PUT retried after a lost answer gets 412 although its first try created the key."""
    registry = open_registry(f"s3://{new_bucket(s3_admin)}?endpoint_url={moto_endpoint}")
    assert registry._create("production/000001.json", b'{"nonce": "mine"}')
    assert registry._create("production/000001.json", b'{"nonce": "mine"}')
    assert not registry._create("production/000001.json", b'{"nonce": "theirs"}')
