// Polar's official TypeScript SDK (npm `@polar-sh/sdk`) against Kith's
// Rapidly routes under /v1/customers, with only the server URL changed.
// Usage: node polar_typescript.mjs BASE_URL API_KEY (exits non-zero on a mismatch)
import assert from "node:assert/strict";
import { Polar } from "@polar-sh/sdk";

const [serverURL, accessToken] = process.argv.slice(2);
const polar = new Polar({ accessToken, serverURL });

const created = await polar.customers.create({ email: "ada@example.com", name: "Ada", externalId: "ada-1", metadata: { plan: "pro" } });
assert.equal(created.email, "ada@example.com");
assert.deepEqual(created.metadata, { plan: "pro" });
assert.equal((await polar.customers.get({ id: created.id })).externalId, "ada-1");
const updated = await polar.customers.update({ id: created.id, customerUpdate: { name: "Ada Lovelace" } });
assert.equal(updated.name, "Ada Lovelace");
assert.equal((await polar.customers.getExternal({ externalId: "ada-1" })).id, created.id);
const pages = await polar.customers.list({ limit: 10 });
for await (const page of pages) {
  assert.deepEqual(page.result.items.map((c) => c.id), [created.id]);
  assert.equal(page.result.pagination.totalCount, 1);
  break;
}
await polar.customers.delete({ id: created.id });
await assert.rejects(polar.customers.get({ id: created.id }), (error) => error.constructor.name === "ResourceNotFound");
console.log("polar typescript sdk: ok");
