# RelayKey container image (docs/deployment.md).
#
#   docker build -t relaykey .
#   docker run --rm -p 8080:8080 -v relaykey-data:/var/lib/relaykey relaykey          # embedded mode
#   docker compose up                                                                 # distributed mode
#
# Two stages: `build` has the compilers better-sqlite3 may need and runs the production install
# (`npm ci --omit=dev`, whose prepare script compiles src/ into dist/); the runtime stage gets only
# what runs (dist/src, migrations, the OpenAPI document, package.json, bin/ and node_modules),
# owned by root and read-only to the service user.

ARG NODE_IMAGE=node:20-bookworm-slim

# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS build

# better-sqlite3 compiles its native addon when no prebuilt binary can be fetched for this
# platform; node:20-bookworm-slim has no compiler, make or python3.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# What `npm ci --omit=dev` reads: the lockfile, the postinstall patcher, and what prepare
# (tsc -p tsconfig.build.json) compiles. Nothing else of the checkout enters the image.
COPY package.json package-lock.json ./
COPY scripts/patch-dependencies.js ./scripts/
COPY tsconfig.json tsconfig.build.json ./
COPY src/ ./src/

# The production install builds dist/ itself; then drop what only building needed: the
# TypeScript compiler and better-sqlite3's sources, headers and object files (its compiled
# addon, build/Release/better_sqlite3.node, is all it loads).
RUN npm ci --omit=dev --no-audit --no-fund \
 && test -f dist/src/cli.js \
 && rm -rf node_modules/typescript node_modules/.bin/tsc node_modules/.bin/tsserver \
 && cd node_modules/better-sqlite3 \
 && mv build/Release/better_sqlite3.node /tmp/better_sqlite3.node \
 && rm -rf build deps src \
 && mkdir -p build/Release \
 && mv /tmp/better_sqlite3.node build/Release/better_sqlite3.node

# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime

# tini as PID 1: forwards SIGTERM to RelayKey's primary (which drains its workers itself) and
# reaps any orphaned process. The image has no curl: the healthcheck below uses node.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*

ENV NODE_ENV=production \
    RELAYKEY_DATA_DIR=/var/lib/relaykey

WORKDIR /app

# Only what runs. The admin API reads src/admin/openapi.json from here at run time, the
# migrate command reads migrations/, and `relaykey --version` reads package.json.
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/src/admin/openapi.json ./src/admin/openapi.json
COPY migrations/ ./migrations/
COPY bin/ ./bin/

# The data directory (embedded mode's SQLite file and generated secrets; in both modes the
# local audit log that survives a crash or a database outage) belongs to the unprivileged
# `node` user (uid 1000) that comes with the base image. Keep it on a volume.
RUN mkdir -p /var/lib/relaykey \
 && chown node:node /var/lib/relaykey \
 && chmod 0700 /var/lib/relaykey
VOLUME ["/var/lib/relaykey"]

USER node

# 8080: the proxy (and unauthenticated /health, /ready). 8081: the admin API, which listens on
# 127.0.0.1 unless RELAYKEY_ADMIN_HOST=0.0.0.0; publish it on the host's 127.0.0.1 only.
EXPOSE 8080 8081

# Readiness on the proxy port: 200 when PostgreSQL/SQLite and Redis/SQLite answer, else 503
# (within RELAYKEY_KEY_LOAD_TIMEOUT_MS, 2 s by default).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.RELAYKEY_PORT || 8080) + '/ready', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))"]

# SIGTERM drains in-flight requests for up to RELAYKEY_SHUTDOWN_GRACE_MS (10 s) and exits 0;
# give `docker stop -t` / stop_grace_period more than that plus 5 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/src/cli.js", "serve"]
