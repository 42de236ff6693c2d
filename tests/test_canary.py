"""The canary test: personal data appears nowhere it must not, on the real dev server.

Every personal field of a request holds a unique canary string. The request runs its whole
lifecycle, from submission to deletion (a policy whose retention has already passed), through the
CLI against `safeshare dev`. Then we look everywhere an attacker, an operator or a backup could:
Temporal's raw history (fetched without the codec), search attributes and memo, the dev server's
database file, the store's database file (its child index holds the NHS number's keyed hash
only), the outbox, and every line the stack and the CLI wrote.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import uuid
from pathlib import Path

import yaml
from temporalio.client import Client

import crypto
from clients import Settings, open_delivery, read_directory
from schemas import ShareRequest
from store import Store
from workers import ACKNOWLEDGE, APPROVE, CONSENT_REFUSED, OVERRIDE, end_retention_at_record, ensure_demo_home

from .conftest import EXAMPLES
from .test_dev_server import DevStack


def canaries() -> dict[str, str]:
    tag = uuid.uuid4().hex[:10]
    fields = ["subject", "statement", "third_party", "relationship", "protected", "protected_rel",
              "item_a", "item_b", "inform_reason", "override_reason", "decision_reason", "challenge"]
    return {f: f"Canary{f.title().replace('_', '')}{tag}" for f in fields}


def canary_nhs_number() -> str:
    """A valid NHS number (modulus 11), random: the consistent child identifier is a canary too."""
    while True:
        first = f"{secrets.randbelow(10**9):09d}"
        check = 11 - sum(int(d) * w for d, w in zip(first, range(10, 1, -1), strict=True)) % 11
        if check != 10:
            return first + str(check % 11)


def canary_request(c: dict[str, str], request_id: str) -> dict:
    data = yaml.safe_load((EXAMPLES / "requests" / "routine-consent.yaml").read_text())
    data.update(
        request_id=request_id,
        purpose={"category": "child_in_need_assessment", "statement": f"Needed because {c['statement']}."},
        subject={"name": c["subject"], "date_of_birth": "2014-03-17", "looked_after": False,
                 "nhs_number": c["nhs_number"]},
        third_parties=[
            {"ref": "aunt", "name": c["third_party"], "relationship": c["relationship"]},
            {"ref": "caller", "name": c["protected"], "relationship": c["protected_rel"], "protected": True},
        ],
        items=[
            {"id": "attendance", "category": "attendance", "kind": "fact", "recorded_on": "2026-11-02",
             "content": f"{c['item_a']} seen with {c['third_party']}; reported by {c['protected']}."},
            {"id": "behaviour", "category": "behaviour", "kind": "opinion", "recorded_on": "2026-11-10",
             "content": f"Teacher's view: {c['item_b']}."},
        ],
        inform_subject={"inform": False, "reason_not": f"Unsafe: {c['inform_reason']}."},
    )
    return data


async def test_no_canary_leaks_anywhere_across_the_whole_lifecycle(tmp_path: Path) -> None:
    """Security model: personal data never appears in plaintext in Temporal (history, search
    attributes, memo, failures), in its database, in the store, in the outbox or in any log."""
    home = tmp_path / "var"
    settings = Settings.from_env({"SAFESHARE_HOME": str(home)})
    ensure_demo_home(settings)
    end_retention_at_record(settings)

    c = {**canaries(), "nhs_number": canary_nhs_number()}
    rid = f"canary-{uuid.uuid4().hex[:8]}"
    data = canary_request(c, rid)
    request = ShareRequest.model_validate(data)
    request_file = tmp_path / "request.yaml"
    request_file.write_text(yaml.safe_dump(data))

    dev = DevStack(home)
    await dev.start()
    try:
        key = str(dev.settings.contact_key_file("np-teacher"))
        assert (await dev.cli("submit", str(request_file), "--key", key))[0] == 0
        await dev.until_stage(rid, "consent")
        await dev.act(request, CONSENT_REFUSED)
        await dev.until_stage(rid, "manager_review")
        challenge = ["challenge", rid, "--by", request.requested_by, "--text", c["challenge"], "--key", key]
        assert (await dev.cli(*challenge))[0] == 0
        await dev.act(request, dataclasses.replace(OVERRIDE, reason=c["override_reason"]))
        await dev.act(request, dataclasses.replace(APPROVE, reason=c["decision_reason"]))
        await dev.until_stage(rid, "receipt")

        # Positive control: the canaries did travel, sealed, to the recipient who may read them.
        recipient = request.recipient_agency
        _, content = await open_delivery(settings, read_directory(settings.directory_file), rid, recipient,
                                         crypto.AgencyKeys.load(settings.agency_key_file(recipient)))
        assert c["item_a"] in json.dumps(content) and c["protected"] not in json.dumps(content)
        assert content["subject"]["nhs_number"] == c["nhs_number"]
        # Positive control: the child index finds the request by the number, which it does not hold.
        code, found = await dev.cli("find-child", "--agency", recipient, "--nhs-number", c["nhs_number"], "--json")
        assert code == 0 and [r["request_id"] for r in json.loads(found)] == [rid], found

        await dev.act(request, ACKNOWLEDGE)
        final = await dev.until_stage(rid, "deleted")
        assert final["deleted_at"] is not None

        raw = await Client.connect(dev.env["TEMPORAL_ADDRESS"])  # no codec: what the server holds
        runs = [wf async for wf in raw.list_workflows(f"WorkflowId = 'share-{rid}'")]
        assert len(runs) >= 2  # the request's run(s) and the tombstone run
        temporal_bytes = []
        for run in runs:
            handle = raw.get_workflow_handle(run.id, run_id=run.run_id)
            history = await handle.fetch_history()
            temporal_bytes += [e.SerializeToString() for e in history.events]
            described = await handle.describe()
            temporal_bytes.append(described.raw_description.SerializeToString())  # memo, search attributes
    finally:
        assert await dev.stop() == 0

    store = await Store.open(settings.database_url, crypto.read_secret(settings.store_key_file))
    try:
        outbox = json.dumps([dataclasses.asdict(r) for r in await store.outbox_for()], default=str).encode()
        assert json.loads(outbox)  # notifications were queued: the check below looked at something
    finally:
        await store.close()

    files = {p.name: p.read_bytes() for p in home.glob("*.db*")}
    assert {"temporal.db", "safeshare.db"} <= set(files)
    # Positive control: the database file is searchable as it is (the request id is in it).
    assert rid.encode() in files["temporal.db"] + files.get("temporal.db-wal", b"")
    places = {
        "raw history, search attributes, memo": b"".join(temporal_bytes),
        "outbox": outbox,
        "logs of the stack and the CLI": b"".join(dev.log),
        **{f"database file {name}": data for name, data in files.items()},
    }
    leaks = [(field, where) for where, data in places.items() for field, value in c.items()
             if value.encode() in data]
    assert leaks == [], f"canaries found: {leaks}"
