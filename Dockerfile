# The workload image for Confidential Space: attestgate as the entrypoint (`attestgate agent`),
# the collaborators' plugins pinned in its configuration, and the workload started by the agent.
# Every collaborator reviews this file, the configuration and the image digest it produces: the
# digest is in the attestation token (`submods.container.image_digest`) and their Vault roles bind
# it.
#
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/workload:TAG .
#
# Build stage: the production binary (no dev launcher) and the plugins, with exactly the commands
# the README documents. The plugin digests in deploy/attestgate.toml must be those of this build
# (`attestgate plugin inspect`); a plugin that differs is refused at start-up.
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN rustup target add wasm32-wasip2
RUN cargo build --release --locked -p attestgate --no-default-features --features engine
RUN cd plugins && cargo build --release --locked
RUN mkdir -p /out/plugins \
 && cp target/release/attestgate /out/attestgate \
 && cp target/plugins/wasm32-wasip2/release/bound_claims.wasm \
       target/plugins/wasm32-wasip2/release/confidential_space.wasm \
       target/plugins/wasm32-wasip2/release/cel_role.wasm \
       target/plugins/wasm32-wasip2/release/rego_policy.wasm /out/plugins/ \
 && mkdir -m 0700 /out/secrets

# Runtime stage: nothing but the binary, the plugins, the configuration and the workload.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/attestgate /usr/local/bin/attestgate
COPY --from=build /out/plugins/ /etc/attestgate/plugins/
COPY deploy/attestgate.toml /etc/attestgate/attestgate.toml
COPY deploy/plugin-config/ /etc/attestgate/plugin-config/
# The delivery root, the agent's (and the workload's) alone: mode 0700, owned by `nonroot`.
COPY --from=build --chown=65532:65532 /out/secrets /var/lib/attestgate/secrets
# The workload itself: the collaboration's program, as deploy/workload/run.
COPY deploy/workload/ /opt/workload/

# What a careful operator sets, and every collaborator checks: the workload's logs reach Cloud
# Logging only on debug images, and neither the command nor the environment can be overridden
# at launch (an override would run something other than what the collaborators approved; the
# launcher refuses any that the image does not allow).
LABEL "tee.launch_policy.log_redirect"="debugonly"
LABEL "tee.launch_policy.monitoring_memory_allow"="never"

ENTRYPOINT ["/usr/local/bin/attestgate", "agent", "--config", "/etc/attestgate/attestgate.toml", "--"]
CMD ["/opt/workload/run"]
