# syntax=docker/dockerfile:1
# One image for every estate process: the command picks the role (serve, ingest, worker, beat).

# --- web assets: GOV.UK Frontend and MoJ Frontend, pinned by package-lock.json -----------------
FROM node:22-slim AS assets
WORKDIR /assets
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error

# --- build: a virtualenv holding the project and its runtime dependencies only ----------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/estate
WORKDIR /src
# Dependencies first, from pyproject.toml alone, so code changes do not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && /opt/estate/bin/pip install -r /tmp/requirements.txt
# .dockerignore admits only the packages and the files the build needs.
COPY . ./
RUN /opt/estate/bin/pip install --no-deps . \
    && /opt/estate/bin/estate --help > /dev/null

# --- runtime -----------------------------------------------------------------------------------
FROM python:3.11-slim AS runtime
RUN groupadd --system --gid 10001 estate \
    && useradd --system --uid 10001 --gid estate --home-dir /var/lib/estate --create-home \
        --shell /usr/sbin/nologin estate
COPY --from=build /opt/estate /opt/estate
COPY --from=assets /assets/node_modules/govuk-frontend/dist /opt/estate/web-assets/govuk-frontend/dist
COPY --from=assets /assets/node_modules/@ministryofjustice/frontend/moj /opt/estate/web-assets/@ministryofjustice/frontend/moj
ENV PATH=/opt/estate/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ESTATE_DATA_DIR=/var/lib/estate \
    ESTATE_WEB_ASSETS_DIR=/opt/estate/web-assets \
    HEALTHCHECK_URL=http://127.0.0.1:8000/healthz
WORKDIR /var/lib/estate
USER estate
EXPOSE 8000
# Fits the API (the default command); compose gives other roles their own check or none.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=4)"]
ENTRYPOINT ["estate"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
