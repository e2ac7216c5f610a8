# syntax=docker/dockerfile:1
# Build stage: install everything and compile TypeScript.
FROM node:20-bookworm-slim AS build
# node-gyp builds the small addon in src/native/ (it keeps LevelDB from memory-mapping tables,
# gives freed memory back to the kernel, and speeds up indexing JSONL vectors), and rebuilds
# classic-level's LevelDB with SSE4.2 CRC32C (scripts/build-leveldb.mjs).
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY src/native ./src/native
COPY scripts/build-leveldb.mjs ./scripts/
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

# Run stage: compiled code and production dependencies, as a non-root user.
FROM node:20-bookworm-slim
# MALLOC_ARENA_MAX: build worker threads would otherwise each grow a malloc arena of their own.
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080 DATA_ROOT=/data CACHE_DIR=/var/lib/shardfeed MALLOC_ARENA_MAX=2
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/src/native/build/Release/shardfeed_native.node ./src/native/build/Release/shardfeed_native.node
COPY package.json ./
RUN mkdir -p /data /var/lib/shardfeed && chown node:node /data /var/lib/shardfeed
USER node
VOLUME ["/data", "/var/lib/shardfeed"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# --max-semi-space-size=1 --heap-growing-percent=50: a small young generation, and an old
# generation that grows by at most half between major collections (see README, "Memory").
CMD ["node", "--max-semi-space-size=1", "--heap-growing-percent=50", "dist/src/server.js"]
