# Skjól in a container (README, "Deployment → Docker").
#   docker build -t skjol .
#   docker run -d --name skjol --restart unless-stopped --stop-timeout 15 \
#     -p 127.0.0.1:8008:8008 -v /srv/skjol:/data skjol
# /data holds homeserver.yaml, the SQLite database, the signing key and the media store.

FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY bin bin
COPY migrations migrations
COPY src src
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:22-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY bin bin
COPY config.example.yaml bridge.example.yaml ./
RUN mkdir /data && chown node:node /data
USER node
VOLUME /data
EXPOSE 8008
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "--max-semi-space-size=2", "bin/skjol.js"]
CMD ["serve", "--config", "/data/homeserver.yaml"]
