"""Everything that talks to the outside: KiotViet, Abaha, Redis."""
