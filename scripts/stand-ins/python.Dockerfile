# Stand-in for python:X.Y-slim-SUITE: the suite's own python3, or PYTHON (python3.14 where
# the suite's python3 is another version), as `python` and `python3`.
ARG BASE
FROM ${BASE}
ARG PYTHON=python3
RUN if ! command -v "$PYTHON" >/dev/null; then \
      apt-get update -q && apt-get install -y -q --no-install-recommends "$PYTHON" \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
    && ln -sf "/usr/bin/$PYTHON" /usr/local/bin/python \
    && ln -sf "/usr/bin/$PYTHON" /usr/local/bin/python3
CMD ["python3"]
