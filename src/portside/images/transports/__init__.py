"""Image transports: registry, OCI layout and archive, docker-archive, local store."""
