"""`safeshare demo`: each example request driven by scripted actors to its end state."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable

from rich.console import Console
from rich.text import Text

import crypto
from clients import SafeshareClient, Settings, connect, open_codec, open_delivery, read_directory, read_request
from schemas import AckAction, ConsentAction, DecisionAction, OverrideAction, Status

from ._home import EXAMPLES, ensure_demo_home

out = Console(markup=False, emoji=False, highlight=False)  # text, never markup (clients/_cli.py's rule)


class Demo:
    def __init__(self, client: SafeshareClient, settings: Settings) -> None:
        self.client, self.settings = client, settings
        self.run = secrets.token_hex(3)  # a fresh id per run: request ids are idempotency keys

    async def submit(self, name: str) -> str:
        request = read_request(EXAMPLES / "requests" / f"{name}.yaml")
        request = request.model_copy(update={"request_id": f"{request.request_id}-{self.run}"})
        await self.client.submit(request)
        out.print(Text.assemble("\n", (name, "bold"), f" → submitted as {request.request_id}"))
        return request.request_id

    async def until(self, rid: str, what: str, check: Callable[[Status], bool]) -> Status:
        async with asyncio.timeout(60):
            while not check(status := await self.client.status(rid)):  # noqa: ASYNC110 - polls a remote query; no local event exists
                await asyncio.sleep(0.1)
        awaited = f", awaiting {status.awaiting.what} from {', '.join(status.awaiting.from_whom)}" \
            if status.awaiting and status.awaiting.from_whom else ""
        out.print(f"  {what}: stage {status.stage}{awaited}")
        return status

    async def open_and_ack(self, rid: str, agency: str) -> None:
        keys = crypto.AgencyKeys.load(self.settings.agency_key_file(agency))
        await open_delivery(self.settings, self.client.directory, rid, agency, keys)
        out.print(f"  {agency} opened the bundle: signature verified, content decrypted")
        await self.client.acknowledge(rid, AckAction(agency=agency), crypto.SigningKey(keys.signing))
        out.print(f"  {agency} acknowledged receipt (signed)")

    def key(self, contact: str) -> crypto.SigningKey:
        return crypto.SigningKey.load(self.settings.contact_key_file(contact))


def stage(*names: str) -> Callable[[Status], bool]:
    return lambda s: s.stage in names


async def run_demo(settings: Settings) -> None:
    ensure_demo_home(settings)
    codec = await open_codec(settings)
    try:
        client = SafeshareClient(
            await connect(settings, codec), read_directory(settings.directory_file), settings.task_queue
        )
        await _drive(Demo(client, settings))
    finally:
        await codec.vault.close()


async def _drive(d: Demo) -> None:
    client = d.client

    rid = await d.submit("routine-consent")
    await d.until(rid, "consent sought", stage("consent"))
    await client.consent(rid, ConsentAction(status="given", by="np-teacher"))
    await d.until(rid, "consent given", stage("manager_review"))
    await client.decide(rid, DecisionAction(decision="approve", manager="np-dsl", reason="Proportionate."),
                        d.key("np-dsl"))
    await d.until(rid, "DSL approved; sealed and delivered", stage("receipt"))
    await d.open_and_ack(rid, "county-childrens-services")
    s = await d.until(rid, "recorded", stage("retention"))
    out.print(f"  outcome {s.outcome}; content deleted on {s.retention_until:%Y-%m-%d}")

    rid = await d.submit("emergency-override")
    await d.until(rid, "shared at once (emergency)", stage("retrospective_review"))
    await d.open_and_ack(rid, "county-childrens-services")
    await client.decide(rid, DecisionAction(decision="approve", manager="rp-sergeant",
                                            reason="Immediate risk justified sharing."), d.key("rp-sergeant"))
    s = await d.until(rid, "retrospective review done", stage("retention"))
    out.print(f"  outcome {s.outcome}; consent basis: override ({s.override_ground})")

    rid = await d.submit("health-special-category")
    await d.until(rid, "consent sought", stage("consent"))
    await client.consent(rid, ConsentAction(status="refused", by="eg-gp"))
    await d.until(rid, "consent refused", stage("manager_review"))
    await client.override(rid, OverrideAction(ground="would_increase_risk_to_child",
                                              reason="Risk of serious harm outweighs refusal.", by="eg-gp"),
                          d.key("eg-gp"))
    await client.decide(rid, DecisionAction(decision="approve", manager="eg-safeguarding-lead",
                                            items=["camhs-referral", "gp-view"], reason="Only what is needed."),
                        d.key("eg-safeguarding-lead"))
    await d.until(rid, "override recorded; two of three items approved", stage("receipt"))
    await d.open_and_ack(rid, "county-childrens-services")
    s = await d.until(rid, "recorded", stage("retention"))
    out.print(f"  outcome {s.outcome}")

    rid = await d.submit("police-inbound-declined")
    await d.until(rid, "police request received by the school", stage("manager_review"))
    await client.decide(rid, DecisionAction(decision="decline", manager="np-dsl",
                                            reason="Not necessary or proportionate for the stated purpose."),
                        d.key("np-dsl"))
    s = await d.until(rid, "declined and recorded", stage("retention"))
    out.print(f"  outcome {s.outcome}; the requester was notified")
    out.print("\nSee them in the Web UI, or: safeshare list; safeshare records ID")
