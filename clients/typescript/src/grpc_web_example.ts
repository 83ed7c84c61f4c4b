// The generated client over gRPC-Web, as a browser would call Kith, here with
// Node's own fetch.
//
//   node dist/grpc_web_example.js BASEURL KEY   (BASEURL like http://127.0.0.1:50071)
//
// gRPC-Web is served on the gRPC listener. Creates a customer, gets it, and
// makes a call that fails on a field, checking that the error's details
// decode to google.rpc.ErrorInfo and google.rpc.BadRequest. Exit code 0 when
// every check passes, 1 with a FAIL line otherwise.
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { check, expectError, runExample, runId, step } from "./check.js";
import { BadRequestSchema, ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { CustomerService } from "./gen/kith/v1/customers_pb.js";

await runExample("node dist/grpc_web_example.js BASEURL KEY   (BASEURL like http://127.0.0.1:50071)", 2,
  async ([baseUrl, key]) => {
    const run = runId();
    const bearer: Interceptor = (next) => (req) => {
      req.header.set("authorization", `Bearer ${key}`);
      return next(req);
    };
    const transport = createGrpcWebTransport({
      baseUrl,
      useBinaryFormat: true,
      interceptors: [bearer],
      fetch: globalThis.fetch,
      defaultTimeoutMs: 10_000,
    });
    const customers = createClient(CustomerService, transport);
    console.log(`run ${run} against ${baseUrl} (gRPC-Web)`);

    // 1. Create a customer.
    const email = `web-${run}@example.com`;
    const { customer: created } = await customers.createCustomer({
      customer: { externalId: `web-${run}`, email, name: "Grace Hopper" },
    });
    check(created !== undefined && created.id !== "", "CreateCustomer returned no customer id");
    check(created.email === email, `email ${created.email}, sent ${email}`);
    step(`CreateCustomer ${created.id} <${created.email}>`);

    // 2. Get it back by external id.
    const got = (await customers.getCustomer({ lookup: { case: "externalId", value: `web-${run}` } })).customer;
    check(got?.id === created.id, `GetCustomer by external id found ${got?.id}, want ${created.id}`);
    check(got.email === email, `GetCustomer email ${got.email}`);
    step(`GetCustomer by external id web-${run}`);

    // 3. A field error. The details come in the gRPC-Web trailers as a
    //    google.rpc.Status; findDetails decodes the entries of the types asked.
    const err = (await expectError("CreateCustomer with an invalid email", () =>
      customers.createCustomer({ customer: { email: "not-an-email" } }))) as ConnectError;
    check(err.code === Code.InvalidArgument, `code ${Code[err.code]}, want InvalidArgument`);
    const infos = err.findDetails(ErrorInfoSchema);
    check(infos.length === 1, `${infos.length} ErrorInfo details, want 1 (details: ${JSON.stringify(err.details.map(detailType))})`);
    check(infos[0].domain === "kith", `ErrorInfo domain ${infos[0].domain}, want kith`);
    check(infos[0].reason === "ERROR_REASON_INVALID_FIELD", `ErrorInfo reason ${infos[0].reason}`);
    const bad = err.findDetails(BadRequestSchema);
    check(bad.length === 1, `${bad.length} BadRequest details, want 1`);
    const paths = bad[0].fieldViolations.map((v) => v.field);
    // The path names the field within the customer (`email`); the
    // request-relative spelling (`customer.email`) is accepted as well.
    check(paths.some((p) => p === "email" || p === "customer.email"), `BadRequest field paths ${JSON.stringify(paths)}`);
    step(`CreateCustomer with a bad email: ${Code[err.code]} ${infos[0].reason} fields ${JSON.stringify(paths)}`);
  });

function detailType(d: ConnectError["details"][number]): string {
  return "desc" in d ? d.desc.typeName : d.type;
}
