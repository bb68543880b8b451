# Build stage: release binary.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY tests ./tests
COPY examples ./examples
RUN cargo build --release --locked --bin tarn

# Runtime stage: small image, non-root user, data in /data.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data tarn \
    && mkdir -p /data && chown tarn /data
COPY --from=build /src/target/release/tarn /usr/local/bin/tarn
COPY config/tarn.toml /etc/tarn/tarn.toml
USER tarn
VOLUME ["/data"]
EXPOSE 9000
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS http://127.0.0.1:9000/health/live || exit 1
ENTRYPOINT ["tarn"]
CMD ["serve", "--config", "/etc/tarn/tarn.toml", "--listen", "0.0.0.0:9000", "--data-dir", "/data"]
