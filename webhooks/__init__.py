"""Flask blueprints that receive KiotViet's webhooks and Abaha's events."""
