"""Hand-written helpers for the generated Kith client (package `kith.v1`)."""

from kith_client.errors import KithError, field_paths, parse_error, reason

__all__ = ["KithError", "field_paths", "parse_error", "reason"]
