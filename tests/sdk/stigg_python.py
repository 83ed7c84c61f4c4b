"""Stigg's official Python SDK (PyPI `stigg`) against Kith's Stigg routes,
with only the base URL changed. It sends and reads `entityTypeId`.

Usage: stigg_python.py BASE_URL API_KEY  (exits non-zero on any mismatch)
A customer with external id `acme` and the entity type `user` must exist.
"""

import sys

from stigg import Stigg

base_url, key = sys.argv[1], sys.argv[2]
client = Stigg(api_key=key, base_url=base_url)
entities = client.v1_beta.customers.entities

upserted = entities.upsert(
    "acme",
    entities=[
        {"id": "user-7f3a0c1d", "entity_type_id": "user", "metadata": {"email": "jane@acme.com", "role": "admin"}},
        {"id": "user-c4d1b2e9", "entity_type_id": "user", "display_name": "John", "metadata": {"email": "john@acme.com"}},
    ],
).data
assert [e.id for e in upserted] == ["user-7f3a0c1d", "user-c4d1b2e9"], upserted
assert upserted[0].entity_type_id == "user" and upserted[0].metadata == {"email": "jane@acme.com", "role": "admin"}

cleared = entities.upsert("acme", entities=[{"id": "user-c4d1b2e9", "display_name": None}]).data[0]
assert cleared.display_name is None and cleared.entity_type_id == "user", cleared

fetched = entities.retrieve("user-7f3a0c1d", id="acme").data
assert fetched.id == "user-7f3a0c1d", fetched

page = entities.list("acme", limit=1)
assert len(page.data) == 1 and page.pagination.next, page
rest = entities.list("acme", limit=1, after=page.pagination.next)
assert {page.data[0].id, rest.data[0].id} == {"user-7f3a0c1d", "user-c4d1b2e9"}, (page, rest)

archived = entities.archive("acme", ids=["user-7f3a0c1d"])
live = entities.list("acme", limit=100)
assert [e.id for e in live.data] == ["user-c4d1b2e9"], live
entities.unarchive("acme", ids=["user-7f3a0c1d"])
print("stigg python sdk: ok")
