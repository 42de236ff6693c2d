"""The consistent child identifier (Children Act 2004 s.16LC: the NHS number): validated, sealed to
the recipient with the rest, and found again by a keyed hash that only the deployment can make.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from typer.testing import CliRunner

import crypto
from clients import open_delivery
from clients._cli import app
from schemas import NHS_NUMBER_EXPECTED, Subject, nhs_number_digits
from workers import DECLINE, ROUTINE, in_stage

from .conftest import Stack

CHILD, OTHER_CHILD = "9434765919", "4010232137"  # valid NHS numbers (the NHS's published examples)


def with_check_digit_ten() -> str:
    """Nine digits whose check digit would be 10: no NHS number begins with them."""
    first = next(f"{n:09d}" for n in range(10**8, 10**9)
                 if sum(int(d) * w for d, w in zip(f"{n:09d}", range(10, 1, -1), strict=True)) % 11 == 1)
    return first + "0"


def test_an_nhs_number_is_ten_digits_ending_in_its_modulus_11_check_digit() -> None:
    """s.16LC's identifier must identify: a mistyped number is refused, never stored as another child's."""
    assert nhs_number_digits("943 476 5919") == nhs_number_digits(9434765919) == CHILD
    assert nhs_number_digits("943-476-5919") == CHILD
    full_width = "".join(chr(0xFF10 + int(d)) for d in CHILD)  # digits, but not ASCII ones
    for bad in ("9434765918", "943476591", "94347659190", "943476591x", full_width, with_check_digit_ten(), None, True):
        assert nhs_number_digits(bad) is None, bad
    with pytest.raises(ValidationError) as refused:
        Subject(name="A", date_of_birth="2015-03-14", nhs_number="9434765918")  # type: ignore[arg-type]
    [error] = refused.value.errors()
    assert error["msg"] == f"subject.nhs_number: {NHS_NUMBER_EXPECTED}" and "9434765918" not in error["msg"]


async def find(stack: Stack, agency: str, nhs_number: str) -> tuple[int, str, str]:
    """`safeshare find-child`, the number typed at its prompt (never on the command line)."""
    env = {"SAFESHARE_HOME": str(stack.settings.home)}
    result = await asyncio.to_thread(CliRunner().invoke, app, ["find-child", "--agency", agency, "--json"],
                                     input=nhs_number + "\n", env=env)
    return result.exit_code, result.stdout, result.stderr


def ids(out: str) -> list[str]:
    """The request ids of find-child's JSON, after its prompt."""
    return [r["request_id"] for r in json.loads(out[out.index("["):])]


async def test_an_agencys_requests_about_one_child_are_found_by_its_nhs_number_alone(stack: Stack) -> None:
    """Repeated concerns about one child are visible to the agencies that sent or received them, by
    a keyed hash of the NHS number: the store holds no number, and deletion removes the link."""
    shared = await stack.request("routine-consent")
    shared = shared.model_copy(update={"subject": shared.subject.model_copy(update={"nhs_number": CHILD})})
    declined = await stack.request("police-inbound-declined")
    declined = declined.model_copy(update={"subject": declined.subject.model_copy(update={"nhs_number": CHILD})})
    other = await stack.request("routine-consent")
    other = other.model_copy(update={"subject": other.subject.model_copy(update={"nhs_number": OTHER_CHILD})})
    for req in (shared, declined, other):
        await stack.client.submit(req)
        await stack.until(req.request_id, in_stage("consent", "manager_review"))

    for agency, expected in (("northfield-primary", {shared.request_id, declined.request_id}),
                             ("county-childrens-services", {shared.request_id}),
                             ("riverside-police", {declined.request_id}), ("eastgate-surgery", set())):
        code, out, err = await find(stack, agency, CHILD)
        assert code == 0, err
        assert set(ids(out)) == expected and CHILD not in out, agency
    code, out, _ = await find(stack, "northfield-primary", OTHER_CHILD)
    assert ids(out) == [other.request_id]

    code, out, err = await find(stack, "northfield-primary", "9434765918")
    assert code == 2 and err == f"error: --nhs-number: {NHS_NUMBER_EXPECTED}\n" and "9434765918" not in out + err

    async with stack.store._engine.connect() as conn:  # what a reader of the store sees
        rows = [tuple(map(str, r)) for r in await conn.execute(sa.text("SELECT * FROM child_index"))]
    assert len(rows) == 3 and not any(CHILD in cell or OTHER_CHILD in cell for row in rows for cell in row)
    key = crypto.child_index_key(crypto.read_secret(stack.settings.child_index_key_file), CHILD)
    assert {r[1] for r in rows} == {key, crypto.child_index_key(
        crypto.read_secret(stack.settings.child_index_key_file), OTHER_CHILD)}

    # The recipient sees the identifier in the sealed bundle.
    await stack.actors.drive(shared, ROUTINE, "receipt")
    recipient = shared.recipient_agency
    _, content = await open_delivery(stack.settings, stack.client.directory, shared.request_id, recipient,
                                     crypto.AgencyKeys.load(stack.settings.agency_key_file(recipient)))
    assert content["subject"]["nhs_number"] == CHILD

    await stack.actors.drive(declined, [DECLINE], "retention")
    await stack.run_to_end(declined.request_id)  # deletion: the link to the child goes with the content
    code, out, _ = await find(stack, "riverside-police", CHILD)
    assert code == 0 and ids(out) == []
