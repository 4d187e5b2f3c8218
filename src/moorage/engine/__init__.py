"""The native engine: plan execution, diff, health, prune, sync windows, retries, recovery."""
