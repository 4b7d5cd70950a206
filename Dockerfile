# The demo image for real clusters: the resil binary running `resil demo-app`.
#   docker build -t resil-demo:latest .
# scripts/kind-up.sh and scripts/minikube-up.sh build it and load it into the node.

# ---- build ----------------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so code changes do not rebuild them: a stub crate with the real
# manifest compiles the whole dependency graph into a cached layer.
# The workspace's three manifests: the toolkit (root), crates/common and crates/lab.
COPY Cargo.toml Cargo.lock ./
COPY crates/common/Cargo.toml crates/common/
COPY crates/lab/Cargo.toml crates/lab/
RUN mkdir -p src crates/common/src crates/lab/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs crates/common/src/lib.rs crates/lab/src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src crates/common/src crates/lab/src
# The whole tree: the binary embeds files from manifests/, cost/ and src/ itself.
COPY . .
# Touch the sources so cargo sees them as newer than the stub build.
RUN touch src/main.rs src/lib.rs crates/common/src/lib.rs crates/lab/src/lib.rs \
    && cargo build --release --locked --bin resil \
    && install -m 0755 target/release/resil /usr/local/bin/resil

# ---- runtime --------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin resil
COPY --from=build /usr/local/bin/resil /usr/local/bin/resil
USER 10001:10001
EXPOSE 8080
ENV PORT=8080
ENTRYPOINT ["resil", "demo-app"]
