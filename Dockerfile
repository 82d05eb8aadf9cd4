# syntax=docker/dockerfile:1
# Production Master: one image for every role (pm serve, pm worker, pm bot, pm schedule run, pm db upgrade).
#   docker build -t production-master:$(git describe --tags) .
# The build stage installs the project with the pinned versions of requirements.lock into a virtualenv;
# the runtime stage copies only that virtualenv and runs as an unprivileged user.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/pm
WORKDIR /src
# Dependencies first (a layer that changes only with the lock), then the project itself.
COPY requirements.lock pyproject.toml README.md ./
COPY bot/ bot/
COPY commands/ commands/
COPY pipeline/ pipeline/
COPY agents/ agents/
COPY publishers/ publishers/
COPY store/ store/
COPY sandbox/ sandbox/
COPY sources/ sources/
RUN /opt/pm/bin/pip install -c requirements.lock . \
    && /opt/pm/bin/pm --help >/dev/null

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="production-master" \
      org.opencontainers.image.description="Investigates production incidents (HTTP app, workers, Slack bot, schedules)" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric id (the chart's runAsUser), no login shell, no home content.
RUN groupadd --system --gid 10001 pm \
    && useradd --system --uid 10001 --gid pm --no-create-home --home-dir /var/lib/pm --shell /usr/sbin/nologin pm \
    && mkdir -p /var/lib/pm \
    && chown pm:pm /var/lib/pm
COPY --from=build /opt/pm /opt/pm
ENV PATH=/opt/pm/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PM_HOME=/var/lib/pm \
    PORT=8080
WORKDIR /var/lib/pm
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["pm"]
CMD ["--help"]
