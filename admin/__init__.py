"""The operators' side: admin API, CLI commands, RQ dashboard, metrics."""
