"""The agent process: one per cluster, outbound-only."""
