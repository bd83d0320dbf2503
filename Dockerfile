# The Ratchet worker as a container. The workspaces it may serve are mounted under /workspaces.
FROM node:20-bookworm-slim

# jemalloc returns what a burst of sessions allocated; glibc's malloc keeps most of it, so a worker
# holding a thousand sessions that await approval stays smaller on jemalloc (docs/PERFORMANCE.md,
# "Parked sessions: the allocator"). It is preloaded from a path that is the same on every
# architecture. Model-requested commands get an environment built from an allowlist, without it.
RUN apt-get update \
  && apt-get install -y --no-install-recommends git ca-certificates bash bubblewrap tini libjemalloc2 \
  && ln -s "$(ldconfig -p | awk '/libjemalloc\.so\.2/ { print $NF; exit }')" /usr/local/lib/libjemalloc.so.2 \
  && rm -rf /var/lib/apt/lists/*
ENV LD_PRELOAD=/usr/local/lib/libjemalloc.so.2

WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --omit=dev --no-audit --no-fund
COPY tsconfig.json ./
COPY bin ./bin
COPY src ./src

# The worker never runs as root: a root worker would run commands as each workspace's owner and
# refuse workspaces root owns (README: What a command may touch). Give ./workspaces to this uid,
# or set RATCHET_UID/RATCHET_GID in docker-compose.yml to your own.
RUN groupadd --gid 10001 ratchet \
  && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/ratchet --shell /bin/bash ratchet \
  && mkdir -p /var/lib/ratchet /workspaces \
  && chown ratchet:ratchet /var/lib/ratchet /workspaces
ENV RATCHET_WORKSPACE_ROOTS=/workspaces \
    RATCHET_HOME=/var/lib/ratchet \
    HOME=/home/ratchet
VOLUME ["/workspaces", "/var/lib/ratchet"]
USER 10001:10001
# tini reaps the init processes that bubblewrap leaves behind for each sandboxed command.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "bin/ratchet.js", "worker"]
