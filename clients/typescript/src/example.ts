// Walks through the Kith API with the generated client over gRPC (HTTP/2).
//
//   node dist/example.js TARGET KEY      (TARGET like http://127.0.0.1:50071)
//
// Creates customers, reads them back, pages through them, upserts and imports
// people, and reads the details of a field error. Every step checks what the
// server answered: exit code 1 with a FAIL line at the first surprise, 0 when
// all went as the contract says. Emails and external ids carry a random
// suffix, so it can run any number of times against one server.
import { equals, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { check, expectError, runExample, runId, step } from "./check.js";
import { parseError } from "./errors.js";
import type { MetadataValueSchema } from "./gen/kith/v1/common_pb.js";
import { CustomerSchema, CustomerService, CustomerType } from "./gen/kith/v1/customers_pb.js";
import { type ImportPeopleRequestSchema, PeopleService, type PersonUpsertSchema } from "./gen/kith/v1/people_pb.js";

await runExample("node dist/example.js TARGET KEY   (TARGET like http://127.0.0.1:50071)", 2, async ([target, key]) => {
  const run = runId();
  const bearer: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${key}`);
    return next(req);
  };
  // connect-node's gRPC transport always speaks HTTP/2 (h2c for http://),
  // so it takes no httpVersion option.
  const transport = createGrpcTransport({
    baseUrl: target,
    interceptors: [bearer],
    defaultTimeoutMs: 10_000,
  });
  const customers = createClient(CustomerService, transport);
  const people = createClient(PeopleService, transport);
  console.log(`run ${run} against ${target}`);

  // 1. Create a customer. The run's id goes in its metadata so the list
  //    below can find this run's customers only.
  const tag: Record<string, MessageInitShape<typeof MetadataValueSchema>> = { run: { kind: { case: "stringValue", value: run } } };
  const email = `ada-${run}@example.com`;
  const { customer: created } = await customers.createCustomer({
    customer: {
      externalId: `ts-${run}-0`,
      email,
      name: "Ada Lovelace",
      billingAddress: { country: "gb", city: "London" },
      metadata: { ...tag, seats: { kind: { case: "intValue", value: 3n } } },
    },
  });
  check(created !== undefined && created.id !== "", "CreateCustomer returned no customer id");
  check(created.email === email, `email ${created.email}, sent ${email}`);
  check(created.externalId === `ts-${run}-0`, `external id ${created.externalId}`);
  check(created.billingAddress?.country === "GB", `country ${created.billingAddress?.country}, want GB`);
  const seats = created.metadata["seats"]?.kind;
  check(seats?.case === "intValue" && seats.value === 3n, "metadata seats not kept as the integer 3");
  check(created.type === CustomerType.INDIVIDUAL, `type ${created.type}`);
  check(created.createdAt !== undefined, "no created_at");
  step(`CreateCustomer ${created.id} <${created.email}>`);

  // 2. Get it back, by id and by external id.
  const byId = (await customers.getCustomer({ lookup: { case: "id", value: created.id } })).customer;
  check(byId !== undefined && equals(CustomerSchema, byId, created), "GetCustomer by id differs from CreateCustomer");
  const byExt = (await customers.getCustomer({ lookup: { case: "externalId", value: `ts-${run}-0` } })).customer;
  check(byExt?.id === created.id, `GetCustomer by external id found ${byExt?.id}`);
  step(`GetCustomer by id and by external id ts-${run}-0`);

  // 3. Four more customers, then every page of this run's customers, two at
  //    a time: pages of 2, 2 and 1, oldest first.
  const ids = [created.id];
  for (let i = 1; i < 5; i++) {
    const { customer } = await customers.createCustomer({
      customer: { externalId: `ts-${run}-${i}`, email: `c${i}-${run}@example.com`, metadata: tag },
    });
    ids.push(customer!.id);
  }
  const listed: string[] = [];
  const sizes: number[] = [];
  let pageToken = "";
  do {
    const page = await customers.listCustomers({ pageSize: 2, pageToken, metadata: tag });
    check(page.changeCursor !== "", "ListCustomers page without change_cursor");
    sizes.push(page.customers.length);
    listed.push(...page.customers.map((c) => c.id));
    pageToken = page.nextPageToken;
    check(sizes.length < 10, "ListCustomers never reached its last page");
  } while (pageToken !== "");
  check(JSON.stringify(sizes) === "[2,2,1]", `page sizes ${JSON.stringify(sizes)}, want [2,2,1]`);
  check(JSON.stringify(listed) === JSON.stringify(ids), `listed ${listed}, want the created ids in order ${ids}`);
  step(`ListCustomers pageSize=2: ${sizes.length} pages [${sizes}], ${listed.length} customers in order`);

  // 4. Upsert three people in one batch, then again with one changed and one
  //    new: the counts tell created from updated.
  const batch: MessageInitShape<typeof PersonUpsertSchema>[] = [0, 1, 2].map((i) => ({
    userId: `ts-${run}-p${i}`,
    email: `p${i}-${run}@example.com`,
    traits: { first_name: `Person${i}`, plan: "free" },
  }));
  const first = await people.batchUpsertPeople({ people: batch });
  check(first.createdCount === 3 && first.updatedCount === 0,
    `first batch created ${first.createdCount} updated ${first.updatedCount}, want 3 and 0`);
  check(JSON.stringify(first.people.map((p) => p.externalId)) === JSON.stringify(batch.map((u) => u.userId)),
    "people not in request order");
  check(first.people[0].firstName === "Person0", "trait first_name did not fill its field");
  check(first.people[0].attributes?.["plan"] === "free", "trait plan did not land in attributes");
  const second = await people.batchUpsertPeople({
    people: [
      { userId: batch[0].userId, traits: { plan: "pro" } },
      { userId: `ts-${run}-p3`, email: `p3-${run}@example.com` },
    ],
  });
  check(second.createdCount === 1 && second.updatedCount === 1,
    `second batch created ${second.createdCount} updated ${second.updatedCount}, want 1 and 1`);
  check(second.people[0].id === first.people[0].id, "the update made a new person");
  check(second.people[0].attributes?.["plan"] === "pro", "plan not updated to pro");
  check(second.people[0].email === batch[0].email, "an omitted email was not kept");
  step(`BatchUpsertPeople: created 3, then created 1 and updated 1 (${first.people[0].id} ...)`);

  // 5. Import people as a client stream of chunks: four new people, one with
  //    a bad email (rejected alone, at stream position 3), and one who
  //    already exists (updated).
  async function* chunks(): AsyncGenerator<MessageInitShape<typeof ImportPeopleRequestSchema>> {
    yield { people: [0, 1, 2].map((i) => ({ userId: `ts-${run}-i${i}`, email: `i${i}-${run}@example.com` })) };
    yield {
      people: [
        { userId: `ts-${run}-i3`, email: "not an email" },
        { userId: `ts-${run}-i4`, email: `i4-${run}@example.com` },
      ],
    };
    yield { people: [{ userId: batch[1].userId, traits: { plan: "team" } }] };
  }
  const report = await people.importPeople(chunks());
  const counts = [report.receivedCount, report.createdCount, report.updatedCount, report.rejectedCount];
  check(counts.join(",") === "6,4,1,1", `import received/created/updated/rejected ${counts}, want 6,4,1,1`);
  check(report.rejections.length === 1, `${report.rejections.length} rejections listed, want 1`);
  const rejection = report.rejections[0];
  check(rejection.position === 3n && rejection.field === "email",
    `rejection at ${rejection.position} on ${rejection.field}, want 3 on email`);
  step(`ImportPeople (3 chunks): received 6, created 4, updated 1, rejected 1` +
    ` (position ${rejection.position}, ${rejection.field}: ${rejection.description})`);

  // 6. A field error: an invalid email and an unknown country, both reported
  //    in one InvalidArgument with ErrorInfo and BadRequest details.
  let e = parseError(await expectError("CreateCustomer with an invalid email", () =>
    customers.createCustomer({ customer: { email: "not-an-email", billingAddress: { country: "ZZ" } } })));
  check(e.code === Code.InvalidArgument, `code ${Code[e.code]}, want InvalidArgument`);
  check(e.domain === "kith", `ErrorInfo domain ${e.domain}, want kith`);
  check(e.reason === "ERROR_REASON_INVALID_FIELD", `ErrorInfo reason ${e.reason}`);
  // Paths name the field within the customer (`email`); accept the
  // request-relative spelling (`customer.email`) as well.
  let paths = e.fieldPaths.map((p) => p.replace(/^customer\./, ""));
  check(paths.includes("email") && paths.includes("billing_address.country"),
    `BadRequest field paths ${JSON.stringify(e.fieldPaths)}, want email and billing_address.country`);
  step(`CreateCustomer with bad fields: ${Code[e.code]} ${e.reason} fields ${JSON.stringify(e.fieldPaths)}`);

  // 7. The same email again (case-insensitively): AlreadyExists on email.
  e = parseError(await expectError("a second customer with the same email", () =>
    customers.createCustomer({ customer: { email: email.toUpperCase() } })));
  check(e.code === Code.AlreadyExists, `code ${Code[e.code]}, want AlreadyExists`);
  check(e.reason === "ERROR_REASON_ALREADY_EXISTS", `ErrorInfo reason ${e.reason}`);
  paths = e.fieldPaths.map((p) => p.replace(/^customer\./, ""));
  check(JSON.stringify(paths) === '["email"]', `field paths ${JSON.stringify(e.fieldPaths)}`);
  step(`CreateCustomer with a taken email: ${Code[e.code]} ${e.reason} fields ${JSON.stringify(e.fieldPaths)}`);
});
