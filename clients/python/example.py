#!/usr/bin/env python3
"""Walks through the Kith gRPC API with the generated Python client.

    python3 example.py TARGET KEY [CA]   (TARGET like 127.0.0.1:50071)

With CA (a PEM file), the channel is TLS and trusts that CA only; TARGET's
host must then be a name the server's certificate holds (localhost, say).

Creates customers, reads them back, pages through them, upserts and imports
people, and reads the details of a field error. Every step checks what the
server answered: the script exits 1 with a FAIL line at the first surprise,
0 when all went as the contract says. Emails and external ids carry a random
suffix, so it can run any number of times against one server.
"""

from __future__ import annotations

import secrets
import sys
from typing import Iterator, List, Optional

import grpc
from google.protobuf import struct_pb2

from kith.v1 import common_pb2, customers_pb2, customers_pb2_grpc, people_pb2, people_pb2_grpc
from kith_client import parse_error

TIMEOUT = 10.0  # seconds, per call


class Failed(Exception):
    """An answer the contract does not allow."""


def check(ok: bool, what: str) -> None:
    if not ok:
        raise Failed(what)


def step(text: str) -> None:
    print(f"ok  {text}", flush=True)


def traits(**values) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


def open_channel(target: str, ca: Optional[str]) -> grpc.Channel:
    if ca is None:
        return grpc.insecure_channel(target)
    with open(ca, "rb") as pem:
        credentials = grpc.ssl_channel_credentials(root_certificates=pem.read())
    return grpc.secure_channel(target, credentials)


def run(target: str, key: str, ca: Optional[str]) -> None:
    run_id = secrets.token_hex(4)
    auth = (("authorization", f"Bearer {key}"),)
    channel = open_channel(target, ca)
    try:
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
    except grpc.FutureTimeoutError:
        raise Failed(f"no gRPC server at {target}")
    customers = customers_pb2_grpc.CustomerServiceStub(channel)
    people = people_pb2_grpc.PeopleServiceStub(channel)
    print(f"run {run_id} against {target}")

    # 1. Create a customer. The run's id goes in its metadata so the list
    #    below can find this run's customers only.
    tag = {"run": common_pb2.MetadataValue(string_value=run_id)}
    email = f"ada-{run_id}@example.com"
    created = customers.CreateCustomer(
        customers_pb2.CreateCustomerRequest(
            customer=customers_pb2.Customer(
                external_id=f"py-{run_id}-0",
                email=email,
                name="Ada Lovelace",
                billing_address=customers_pb2.BillingAddress(country="gb", city="London"),
                metadata={**tag, "seats": common_pb2.MetadataValue(int_value=3)},
            )
        ),
        metadata=auth,
        timeout=TIMEOUT,
    ).customer
    check(created.id != "", "CreateCustomer returned no id")
    check(created.email == email, f"email {created.email!r}, sent {email!r}")
    check(created.external_id == f"py-{run_id}-0", f"external_id {created.external_id!r}")
    check(created.billing_address.country == "GB", f"country {created.billing_address.country!r}, want 'GB'")
    check(created.metadata["seats"].int_value == 3, "metadata seats not kept as the integer 3")
    check(created.type == customers_pb2.CUSTOMER_TYPE_INDIVIDUAL, f"type {created.type}")
    check(created.HasField("created_at"), "no created_at")
    step(f"CreateCustomer {created.id} <{created.email}>")

    # 2. Get it back, by id and by external id.
    by_id = customers.GetCustomer(
        customers_pb2.GetCustomerRequest(id=created.id), metadata=auth, timeout=TIMEOUT
    ).customer
    check(by_id == created, "GetCustomer by id differs from what CreateCustomer returned")
    by_ext = customers.GetCustomer(
        customers_pb2.GetCustomerRequest(external_id=created.external_id), metadata=auth, timeout=TIMEOUT
    ).customer
    check(by_ext.id == created.id, f"GetCustomer by external id found {by_ext.id}")
    step(f"GetCustomer by id and by external id {created.external_id}")

    # 3. Four more customers, then every page of this run's customers, two
    #    at a time: pages of 2, 2 and 1, oldest first.
    ids = [created.id]
    for i in range(1, 5):
        c = customers.CreateCustomer(
            customers_pb2.CreateCustomerRequest(
                customer=customers_pb2.Customer(
                    external_id=f"py-{run_id}-{i}", email=f"c{i}-{run_id}@example.com", metadata=tag
                )
            ),
            metadata=auth,
            timeout=TIMEOUT,
        ).customer
        ids.append(c.id)
    listed: List[str] = []
    sizes: List[int] = []
    token = ""
    while True:
        page = customers.ListCustomers(
            customers_pb2.ListCustomersRequest(page_size=2, page_token=token, metadata=tag),
            metadata=auth,
            timeout=TIMEOUT,
        )
        check(page.change_cursor != "", "ListCustomers page without change_cursor")
        sizes.append(len(page.customers))
        listed.extend(c.id for c in page.customers)
        token = page.next_page_token
        if not token:
            break
        check(len(sizes) < 10, "ListCustomers never reached its last page")
    check(sizes == [2, 2, 1], f"page sizes {sizes}, want [2, 2, 1]")
    check(listed == ids, f"listed {listed}, want the created ids in creation order {ids}")
    step(f"ListCustomers page_size=2: {len(sizes)} pages {sizes}, {len(listed)} customers in order")

    # 4. Upsert three people in one batch, then again with one changed and
    #    one new: the counts tell created from updated.
    batch = [
        people_pb2.PersonUpsert(
            user_id=f"py-{run_id}-p{i}",
            email=f"p{i}-{run_id}@example.com",
            traits=traits(first_name=f"Person{i}", plan="free"),
        )
        for i in range(3)
    ]
    first = people.BatchUpsertPeople(
        people_pb2.BatchUpsertPeopleRequest(people=batch), metadata=auth, timeout=TIMEOUT
    )
    check((first.created_count, first.updated_count) == (3, 0),
          f"first batch created {first.created_count} updated {first.updated_count}, want 3 and 0")
    check([p.external_id for p in first.people] == [u.user_id for u in batch], "people not in request order")
    check(first.people[0].first_name == "Person0", "trait first_name did not fill its field")
    check(first.people[0].attributes["plan"] == "free", "trait plan did not land in attributes")
    second = people.BatchUpsertPeople(
        people_pb2.BatchUpsertPeopleRequest(people=[
            people_pb2.PersonUpsert(user_id=batch[0].user_id, traits=traits(plan="pro")),
            people_pb2.PersonUpsert(user_id=f"py-{run_id}-p3", email=f"p3-{run_id}@example.com"),
        ]),
        metadata=auth,
        timeout=TIMEOUT,
    )
    check((second.created_count, second.updated_count) == (1, 1),
          f"second batch created {second.created_count} updated {second.updated_count}, want 1 and 1")
    check(second.people[0].id == first.people[0].id, "the update made a new person")
    check(second.people[0].attributes["plan"] == "pro", "plan not updated to pro")
    check(second.people[0].email == batch[0].email, "an omitted email was not kept")
    step(f"BatchUpsertPeople: created 3, then created 1 and updated 1 ({first.people[0].id} ...)")

    # 5. Import people as a client stream of chunks: four new people, one
    #    with a bad email (rejected alone, at stream position 3), and one
    #    who already exists (updated).
    def chunks() -> Iterator[people_pb2.ImportPeopleRequest]:
        yield people_pb2.ImportPeopleRequest(people=[
            people_pb2.PersonUpsert(user_id=f"py-{run_id}-i{i}", email=f"i{i}-{run_id}@example.com")
            for i in range(3)
        ])
        yield people_pb2.ImportPeopleRequest(people=[
            people_pb2.PersonUpsert(user_id=f"py-{run_id}-i3", email="not an email"),
            people_pb2.PersonUpsert(user_id=f"py-{run_id}-i4", email=f"i4-{run_id}@example.com"),
        ])
        yield people_pb2.ImportPeopleRequest(people=[
            people_pb2.PersonUpsert(user_id=batch[1].user_id, traits=traits(plan="team")),
        ])

    report = people.ImportPeople(chunks(), metadata=auth, timeout=TIMEOUT)
    counts = (report.received_count, report.created_count, report.updated_count, report.rejected_count)
    check(counts == (6, 4, 1, 1), f"import received/created/updated/rejected {counts}, want (6, 4, 1, 1)")
    check(len(report.rejections) == 1, f"{len(report.rejections)} rejections listed, want 1")
    rejection = report.rejections[0]
    check(rejection.position == 3 and rejection.field == "email",
          f"rejection at {rejection.position} on {rejection.field!r}, want 3 on 'email'")
    step(f"ImportPeople (3 chunks): received 6, created 4, updated 1, rejected 1"
         f" (position {rejection.position}, {rejection.field}: {rejection.description})")

    # 6. A field error: an invalid email and an unknown country, both
    #    reported in one INVALID_ARGUMENT with ErrorInfo and BadRequest.
    try:
        customers.CreateCustomer(
            customers_pb2.CreateCustomerRequest(
                customer=customers_pb2.Customer(
                    email="not-an-email", billing_address=customers_pb2.BillingAddress(country="ZZ")
                )
            ),
            metadata=auth,
            timeout=TIMEOUT,
        )
    except grpc.RpcError as err:
        e = parse_error(err)
    else:
        raise Failed("CreateCustomer with an invalid email succeeded")
    check(e.code == grpc.StatusCode.INVALID_ARGUMENT, f"code {e.code}, want INVALID_ARGUMENT")
    check(e.domain == "kith", f"ErrorInfo domain {e.domain!r}, want 'kith'")
    check(e.reason == "ERROR_REASON_INVALID_FIELD", f"ErrorInfo reason {e.reason!r}")
    # Paths name the field within the customer (`email`); accept the
    # request-relative spelling (`customer.email`) as well.
    paths = [p.removeprefix("customer.") for p in e.field_paths]
    check("email" in paths and "billing_address.country" in paths,
          f"BadRequest field paths {e.field_paths}, want email and billing_address.country")
    step(f"CreateCustomer with bad fields: {e.code.name} {e.reason} fields {e.field_paths}")

    # 7. The same email again (case-insensitively): ALREADY_EXISTS on email.
    try:
        customers.CreateCustomer(
            customers_pb2.CreateCustomerRequest(customer=customers_pb2.Customer(email=email.upper())),
            metadata=auth,
            timeout=TIMEOUT,
        )
    except grpc.RpcError as err:
        e = parse_error(err)
    else:
        raise Failed("a second customer with the same email was created")
    check(e.code == grpc.StatusCode.ALREADY_EXISTS, f"code {e.code}, want ALREADY_EXISTS")
    check(e.reason == "ERROR_REASON_ALREADY_EXISTS", f"ErrorInfo reason {e.reason!r}")
    check([p.removeprefix("customer.") for p in e.field_paths] == ["email"], f"field paths {e.field_paths}")
    step(f"CreateCustomer with a taken email: {e.code.name} {e.reason} fields {e.field_paths}")

    channel.close()


def main(argv: List[str]) -> int:
    if len(argv) not in (3, 4):
        print("usage: example.py TARGET KEY [CA]   (TARGET like 127.0.0.1:50071)", file=sys.stderr)
        return 2
    try:
        run(argv[1], argv[2], argv[3] if len(argv) == 4 else None)
    except Failed as failure:
        print(f"FAIL: {failure}", file=sys.stderr)
        return 1
    except grpc.RpcError as err:
        e = parse_error(err)
        print(f"FAIL: unexpected error {e.code.name}: {e.message} (reason {e.reason}, fields {e.field_paths})",
              file=sys.stderr)
        return 1
    print("all steps passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
