# The Ratchet worker as a container. The workspaces it may serve are mounted under /workspaces.
FROM node:20-bookworm-slim

RUN apt-get update \
  && apt-get install -y --no-install-recommends git ca-certificates bash bubblewrap tini \
  && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --omit=dev --no-audit --no-fund
COPY tsconfig.json ./
COPY bin ./bin
COPY src ./src

ENV RATCHET_WORKSPACE_ROOTS=/workspaces \
    RATCHET_HOME=/var/lib/ratchet
VOLUME ["/workspaces", "/var/lib/ratchet"]
# tini reaps the init processes that bubblewrap leaves behind for each sandboxed command.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "bin/ratchet.js", "worker"]
