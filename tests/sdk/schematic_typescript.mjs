// Schematic's official TypeScript SDK (npm `@schematichq/schematic-typescript-node`)
// against Kith's Schematic routes, with only the base path changed. It sends
// lookup keys as a JSON object (`keys={...}`), unlike the Python SDK.
// Usage: node schematic_typescript.mjs BASE_URL API_KEY (exits non-zero on a mismatch)
import assert from "node:assert/strict";
import { SchematicClient } from "@schematichq/schematic-typescript-node";

const [basePath, apiKey] = process.argv.slice(2);
const client = new SchematicClient({ apiKey, basePath });

const user = (await client.companies.upsertUser({ keys: { email: "jane@example.com" }, name: "Jane", traits: { is_admin: true }, company: { domain: "acme.com" } })).data;
assert.equal(user.name, "Jane");
assert.equal(user.companyMemberships.length, 1);
const found = (await client.companies.lookupUser({ keys: { email: "jane@example.com" } })).data;
assert.equal(found.id, user.id);
const company = (await client.companies.upsertCompany({ keys: { domain: "acme.com" }, name: "Acme" })).data;
assert.equal(company.id, user.companyMemberships[0].companyId);
assert.equal((await client.companies.lookupCompany({ keys: { domain: "acme.com" } })).data.id, company.id);
assert.equal((await client.companies.countUsers()).data.count, 1);
console.log("schematic typescript sdk: ok");
process.exit(0);
