"""The empty job of the ingest benchmark's baseline."""


def noop() -> None:
    """Do nothing: what RQ itself costs per job."""
