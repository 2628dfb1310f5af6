"""Simulated KiotViet and Abaha servers, and the local stack that runs the service against them."""
