# Stand-in for ghcr.io/astral-sh/uv:pythonX.Y-SUITE-slim: the python stand-in plus uv (its
# binary, taken from PyPI's wheel by scripts/stand-in-images). The system certificates
# include the host's extra CAs, which a TLS-intercepting proxy needs.
ARG PYTHON_IMAGE
FROM ${PYTHON_IMAGE}
COPY uv /usr/local/bin/uv
ENV UV_SYSTEM_CERTS=1
