# Ephemera: multi-stage build. Configuration comes only from EPHEMERA_* environment variables.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src

# Dependencies first, in a layer of their own: it is rebuilt only when a manifest changes.
COPY Cargo.toml Cargo.lock ./
COPY crates/protocol/Cargo.toml crates/protocol/
COPY crates/store/Cargo.toml crates/store/
COPY crates/realtime/Cargo.toml crates/realtime/
COPY crates/api/Cargo.toml crates/api/
COPY tests/Cargo.toml tests/
RUN for c in protocol store realtime api; do mkdir -p "crates/$c/src" && touch "crates/$c/src/lib.rs"; done \
    && echo 'fn main() {}' > crates/api/src/main.rs \
    && mkdir -p crates/store/tests tests/e2e && touch crates/store/tests/main.rs tests/e2e/main.rs \
    && cargo build --release --locked -p ephemera-api \
    && rm -rf crates tests

# Then the project itself.
COPY . .
RUN touch crates/*/src/lib.rs crates/api/src/main.rs \
    && cargo build --release --locked -p ephemera-api --bin ephemera

FROM debian:bookworm-slim
# CA certificates, for rediss:// to a managed Redis whose certificate a public CA signed.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /src/target/release/ephemera /usr/local/bin/ephemera
# An unprivileged user with no shell and no home.
USER 10001:10001
ENV EPHEMERA_BIND_ADDR=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=4s --start-period=5s --retries=3 CMD ["ephemera", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["ephemera"]
