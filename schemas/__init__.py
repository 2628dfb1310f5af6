"""marshmallow schemas: providers' bodies in, normalized events out."""
