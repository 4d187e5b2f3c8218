"""The control plane: API, database, GitOps sync, dispatch."""
