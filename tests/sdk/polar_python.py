"""Polar's official Python SDK (PyPI `polar-sdk`) against Kith's Rapidly
routes under `/v1/customers`, with only the base URL changed.

Usage: polar_python.py BASE_URL API_KEY  (exits non-zero on any mismatch)
"""

import sys

from polar.v2026_10.client import Polar

base_url, key = sys.argv[1], sys.argv[2]
polar = Polar(key, base_url=base_url)

created = polar.customers.create(
    type="individual", email="ada@example.com", name="Ada", external_id="ada-1", metadata={"plan": "pro"}
)
assert type(created).__name__ == "CustomerIndividual", created
assert created.email == "ada@example.com" and created.metadata == {"plan": "pro"}, created

fetched = polar.customers.get(created.id)
assert fetched.id == created.id and fetched.external_id == "ada-1", fetched

updated = polar.customers.update(created.id, name="Ada Lovelace", billing_address={"country": "us", "state": "ny"})
assert updated.name == "Ada Lovelace", updated
assert updated.billing_address.country == "US" and updated.billing_address.state == "US-NY", updated

by_external = polar.customers.get_external("ada-1")
assert by_external.id == created.id, by_external

listed = polar.customers.list(limit=10)
assert [c.id for c in listed.items] == [created.id], listed
assert listed.pagination.total_count == 1, listed.pagination

try:
    polar.customers.get("00000000-0000-4000-8000-000000000000")
    raise AssertionError("an unknown customer was found")
except Exception as error:  # the SDK's typed 404
    assert type(error).__name__ == "ResourceNotFound", error

polar.customers.delete(created.id)
print("polar python sdk: ok")
