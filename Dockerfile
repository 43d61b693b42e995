# kanaria as a container: `docker build -t kanaria .`, then
#   docker run -v /srv/kanaria/kanaria.yaml:/etc/kanaria/kanaria.yaml:ro \
#              -v kanaria-data:/var/lib/kanaria -p 7070:7070 kanaria
# The config's dataDir must be /var/lib/kanaria, and `listen` 0.0.0.0:7070 to be reached from
# outside the container. HAProxy is in the image for the local platform. The build stage needs
# the npm registry (the web UI's packages, npm ci of ui/package-lock.json).
# tests/packaging/dockerfile.sh (ctest dockerfile_tree) builds the tree this image holds.

FROM debian:12 AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config python3 ca-certificates nodejs npm \
        libgit2-dev libyaml-dev libcurl4-openssl-dev libjansson-dev libuv1-dev \
        libcmocka-dev libsqlite3-dev libh2o-dev libssl-dev libxml2-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
 && cmake --build /build -j"$(nproc)" --target kanaria kanaria_docs \
 && DESTDIR=/stage cmake --install /build

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        libgit2-1.5 libyaml-0-2 libcurl4 libjansson4 libuv1 libsqlite3-0 libh2o0.13 libssl3 \
        libxml2 haproxy ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/kanaria --create-home \
        --shell /usr/sbin/nologin kanaria \
 && mkdir -p /etc/kanaria
COPY --from=build /stage/usr/bin/kanaria /usr/bin/kanaria
COPY --from=build /stage/usr/share/doc/kanaria/examples/kanaria.yaml /usr/share/doc/kanaria/examples/kanaria.yaml
COPY --from=build /stage/usr/share/bash-completion/completions/kanaria /usr/share/bash-completion/completions/kanaria
USER kanaria
WORKDIR /var/lib/kanaria
VOLUME /var/lib/kanaria
EXPOSE 7070
ENTRYPOINT ["/usr/bin/kanaria"]
CMD ["serve", "-c", "/etc/kanaria/kanaria.yaml"]
