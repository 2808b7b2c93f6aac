# syntax=docker/dockerfile:1
# Model Router gateway image.
#   docker build -t modelrouter .
#   docker run -p 8080:8080 -v modelrouter-data:/data modelrouter            # SQLite in /data
#   docker run ... -e MODELROUTER_DATABASE_URL=postgres://... modelrouter    # PostgreSQL
# Other subcommands work too: docker run --rm -v modelrouter-data:/data modelrouter import /data/import.toml

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# The cache mounts keep the registry and build artifacts between builds (BuildKit); the binary is
# copied out of the cached target directory because the mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin modelrouter \
 && install -D -m 0755 target/release/modelrouter /out/modelrouter

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 modelrouter \
 && useradd --system --uid 10001 --gid modelrouter --home-dir /data --shell /usr/sbin/nologin modelrouter \
 && mkdir -p /data \
 && chown modelrouter:modelrouter /data
COPY --from=builder /out/modelrouter /usr/local/bin/modelrouter
USER modelrouter:modelrouter
WORKDIR /data
VOLUME ["/data"]
ENV MODELROUTER_DATA_DIR=/data \
    MODELROUTER_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["modelrouter"]
CMD ["serve"]
