"""ImportCluster models, loader, variables, plan and validation (pure: no network, no Kubernetes)."""
