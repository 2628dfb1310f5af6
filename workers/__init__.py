"""RQ jobs that apply normalized events through the adapters."""
