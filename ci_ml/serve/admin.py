"""The admin routes of ``ci-ml serve``: ``POST /admin/reload`` and ``POST /admin/shadow``,
behind a bearer token.

They exist only when ``CI_ML_ADMIN_TOKEN`` is set. A request without ``Authorization: Bearer
<token>`` gets 401, with a wrong token 403; the token is compared in constant time (the
sha256 of both, so not even its length leaks). A reload can only switch to the registry's
production version: 200 with the outcome, 422 refused, 409 nothing in production, 503 the
registry or a worker failed, and the old model keeps serving in every case but 200.

``POST /admin/shadow`` with ``{"sample": 0.05}`` changes the share of requests the shadow
scores, at once and for every worker (0 pauses shadowing, and a later request resumes it):
200 with the sample before and after, 409 when the service has no shadow, 400 for a body that
is not a JSON object, 413 for one over 1 KiB, 422 for a sample that is not a number in [0, 1].
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from ci_ml.errors import CiMlError
from ci_ml.serve.input import InvalidRequest, read_body
from ci_ml.serve.model import ModelRefused, NoProduction
from ci_ml.serve.status import error

if TYPE_CHECKING:
    from ci_ml.serve.service import Service

log = logging.getLogger(__name__)
ADMIN_BODY_BYTES = 1024


def add_admin_routes(app: FastAPI, service: Service, token: str) -> None:
    """Add ``POST /admin/reload`` and ``/admin/shadow`` to ``app``, for requests that bear
    ``token``."""
    expected = hashlib.sha256(token.encode()).digest()

    @app.post("/admin/reload", summary="Serve the registry's production version now")
    async def reload(request: Request) -> Response:
        """Load, check and swap in the registry's production version (bearer token)."""
        _authorize(request.headers.get("authorization"), expected)
        loop = asyncio.get_running_loop()
        if service.link is not None:  # the supervisor reloads every worker
            try:
                status, body = await loop.run_in_executor(None, service.link.reload)
            except CiMlError as err:
                return error(503, str(err))
            return JSONResponse(body, status)
        old = service.holder.current
        try:
            result = await loop.run_in_executor(None, service.reload)
        except CiMlError as err:  # refused 422, nothing in production 409, registry down 503
            status = {ModelRefused: 422, NoProduction: 409}.get(type(err), 503)
            serving = old.version if old else None
            return JSONResponse({"detail": str(err), "serving": serving}, status)
        except Exception as err:  # a bug: logged whole; the old model keeps serving
            log.exception("reload failed")
            serving = old.version if old else None
            detail = f"the reload failed ({type(err).__name__}: {err}); the log has the traceback"
            return JSONResponse({"detail": detail, "serving": serving}, 500)
        return JSONResponse(
            {
                "outcome": result.outcome,
                "old_version": result.old_version,
                "new_version": result.new_version,
                "model_digest": result.model_digest,
            }
        )

    @app.post("/admin/shadow", summary="Change the share of requests the shadow scores")
    async def shadow(request: Request) -> Response:
        """Set the shadow's sample, in [0, 1], for every worker (bearer token)."""
        _authorize(request.headers.get("authorization"), expected)
        scorer = service.shadow
        if scorer is None:
            return error(409, "this service has no shadow; start it with --shadow VERSION")
        try:  # a sample is a few bytes: a flood is never read whole
            hint = 'send {"sample": 0.2}'
            data = await read_body(request.scope, request.receive, ADMIN_BODY_BYTES, hint)
        except InvalidRequest as err:
            return error(err.status, str(err))
        try:
            body = json.loads(data)
        except ValueError:
            return error(400, 'the body is not JSON; send {"sample": 0.2}')
        if not isinstance(body, dict) or "sample" not in body:
            return error(400, 'the body must be a JSON object like {"sample": 0.2}')
        sample = _sample(body["sample"])
        if sample is None:
            given = json.dumps(body["sample"])
            given = given if len(given) <= 40 else given[:37] + "..."
            return error(422, f"sample {given} is not a number from 0 to 1 (0 pauses shadowing)")
        previous = scorer.rate.value
        scorer.rate.value = sample
        log.info("shadow sample %s -> %s (POST /admin/shadow)", previous, sample)
        return JSONResponse(
            {"shadow_version": scorer.model.version, "sample": sample, "previous_sample": previous}
        )


def _sample(value: Any) -> float | None:
    """``value`` as a share in [0, 1], or None when it is not one (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        share = float(value)
    except OverflowError:  # an integer of hundreds of digits
        return None
    return share if math.isfinite(share) and 0.0 <= share <= 1.0 else None


def _authorize(header: str | None, expected: bytes) -> None:
    """401 without a bearer token, 403 with a wrong one; the compare takes constant time."""
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise HTTPException(
            401,
            "this endpoint needs the header 'Authorization: Bearer <token>' with the token "
            "in CI_ML_ADMIN_TOKEN of the service",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # hashing first makes the compare independent of the token's length too
    digest = hashlib.sha256(given.strip().encode("latin-1")).digest()
    if not hmac.compare_digest(digest, expected):
        raise HTTPException(403, "the bearer token is not the service's admin token")
