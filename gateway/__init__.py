"""camgw: the camera-network unification gateway (HTTP API, registry, auth, audit, CLI)."""
