# ci-ml serve in a container: the model web service (docs/deploy.md#in-a-container).
#
#   docker build -t ci-ml-serve .
#   docker run -p 8000:8000 -v "$PWD/.ci-ml/registry:/registry" ci-ml-serve
#   docker run -p 8000:8000 -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY \
#     ci-ml-serve --registry s3://bucket/models --poll 30
#
# The image serves the registry's production version (JSON records on POST /predict, the
# Open Inference Protocol under /v2); it holds no model and no credentials of its own.
# Pin the base image by digest in your copy (python:3.12-slim-bookworm@sha256:...), and
# let Dependabot or Renovate move it.

FROM python:3.12-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ci_ml ./ci_ml
# serve (FastAPI, uvicorn), onnx (ONNX Runtime, for an exported model), s3 (an S3 registry)
ARG EXTRAS=serve,onnx,s3
RUN python -m venv /opt/ci-ml \
    && /opt/ci-ml/bin/pip install --no-cache-dir ".[${EXTRAS}]"

FROM python:3.12-slim-bookworm
COPY --from=build /opt/ci-ml /opt/ci-ml
ENV PATH=/opt/ci-ml/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# never root: the service reads the registry and writes only its request log
RUN useradd --system --uid 10001 --home-dir /srv --create-home ci-ml
USER 10001
WORKDIR /srv
EXPOSE 8000
# readiness: 200 once a production model is loaded and smoke-tested
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["ci-ml", "serve", "--host", "0.0.0.0", "--port", "8000"]
CMD ["--registry", "/registry"]
