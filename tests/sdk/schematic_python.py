"""Schematic's official Python SDK (PyPI `schematichq`) against Kith's
Schematic routes, with only the base URL changed.

Usage: schematic_python.py BASE_URL API_KEY  (exits non-zero on any mismatch)
"""

import sys

from schematic.client import Schematic, SchematicConfig

base_url, key = sys.argv[1], sys.argv[2]
client = Schematic(key, SchematicConfig(base_url=base_url))

user = client.companies.upsert_user(
    keys={"email": "jane.doe@example.com"}, name="Jane Doe", traits={"is_admin": True}, company={"domain": "acme.com"}
).data
assert user.name == "Jane Doe", user
assert [(k.key, k.value) for k in user.keys] == [("email", "jane.doe@example.com")], user.keys
assert len(user.company_memberships) == 1, user.company_memberships

looked_up = client.companies.lookup_user(keys={"email": "jane.doe@example.com"}).data
assert looked_up.id == user.id, looked_up

assert [u.id for u in client.companies.list_users(limit=10).data] == [user.id]
assert client.companies.count_users().data.count == 1

company = client.companies.upsert_company(keys={"domain": "acme.com"}, name="Acme").data
assert company.id == user.company_memberships[0].company_id, company
assert client.companies.lookup_company(keys={"domain": "acme.com"}).data.id == company.id

traited = client.companies.upsert_user_trait(keys={"email": "jane.doe@example.com"}, trait="logins", incr=2).data
assert traited.traits["logins"] == 2, traited.traits

if hasattr(client, "shutdown"):
    client.shutdown()
print("schematic python sdk: ok")
