# Multi-stage build of the `tether` binary; the runtime image holds only the binary.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p tether-cli --bin tether

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home tether
COPY --from=build /src/target/release/tether /usr/local/bin/tether
COPY config/tether.toml /etc/tether/tether.toml
USER tether
ENV TETHER_CONFIG=/etc/tether/tether.toml
EXPOSE 9292 9464
ENTRYPOINT ["/usr/local/bin/tether"]
CMD ["worker"]
