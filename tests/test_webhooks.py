"""Webhooks: notifications to contacts who chose them, and sealed bundles pushed to recipient
agencies whose delivery is `webhook`, against a real HTTP receiver (aiohttp) on this machine.

Rules protected: every body is HMAC-SHA256-signed with the deployment's secret; a receiver's 4xx
is final (recorded, not retried), a 5xx is retried; a bundle reaches its recipient exactly once
per request, even when the worker is killed between sending it and recording that it did.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from aiohttp import web
from temporalio.service import RPCError

import crypto
from activities import SIGNATURE_HEADER, idempotency_key
from clients import InputError, SafeshareClient, Settings, open_codec, read_directory
from schemas import Status, workflow_id
from store import Store
from workers import demo_key, ensure_demo_home, eventually, load_home, running_worker
from workers._dev import _connect_when_ready, dev_server_args

from .conftest import BIN, EXAMPLES, Stack, example
from .test_dev_server import free_port
from .test_notifications import personal_data

RECIPIENT = "county-childrens-services"


@dataclass
class Receipt:
    path: str
    key: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook endpoint as an agency would run one: checks the signature, dedupes on
    Idempotency-Key, counts distinct accepted deliveries. `script` holds statuses to answer first;
    `hold` keeps a response back after accepting (what a sender that dies mid-send sees)."""

    secret: bytes = b""
    url: str = ""
    posts: list[Receipt] = field(default_factory=list)
    accepted: dict[str, Receipt] = field(default_factory=dict)
    script: list[int] = field(default_factory=list)
    hold: asyncio.Event | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + crypto.hmac_sha256_hex(self.secret, body)
        if not hmac.compare_digest(request.headers.get(SIGNATURE_HEADER, ""), expected):
            return web.Response(status=401)
        got = Receipt(request.path, request.headers["Idempotency-Key"], dict(request.headers), body)
        self.posts.append(got)
        self.arrived.set()
        if self.script:
            return web.Response(status=self.script.pop(0))
        duplicate = got.key in self.accepted
        self.accepted.setdefault(got.key, got)
        if self.hold is not None and not duplicate:
            await self.hold.wait()
        return web.json_response({"duplicate": duplicate})

    def at(self, path: str) -> list[Receipt]:
        return [p for p in self.posts if p.path == path]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    rec.url = f"http://{host}:{port}"
    yield rec
    if rec.hold is not None:
        rec.hold.set()
    await runner.cleanup()


@pytest.fixture
def settings(tmp_path: Path, receiver: Receiver) -> Settings:
    """np-teacher is notified by webhook; the recipient agency takes bundles by webhook."""
    s = Settings.from_env({"SAFESHARE_HOME": str(tmp_path / "home")})
    ensure_demo_home(s)
    directory = yaml.safe_load(s.directory_file.read_text())
    for agency in directory["agencies"]:
        if agency["id"] == RECIPIENT:
            agency.update(delivery="webhook", webhook_url=f"{receiver.url}/bundles")
        for contact in agency["contacts"]:
            if contact["id"] == "np-teacher":
                contact.update(notify="webhook", webhook_url=f"{receiver.url}/notify/np-teacher")
    s.directory_file.write_text(yaml.safe_dump(directory, sort_keys=False))
    receiver.secret = crypto.read_secret(s.webhook_secret_file)
    return s


async def test_webhook_notification_is_signed_keyed_and_free_of_personal_data(
    stack: Stack, receiver: Receiver
) -> None:
    req = await stack.request("routine-consent")
    rid = req.request_id
    await stack.client.submit(req)
    await stack.until(rid, lambda s: s.stage == "consent")
    [post] = receiver.at("/notify/np-teacher")  # the signature was checked on arrival
    [row] = [r for r in await stack.store.outbox_for(rid) if r.kind == "consent_requested"]
    assert row.channel == "webhook" and row.sent_at is not None
    assert post.key == idempotency_key(row.dedupe_key)
    message = json.loads(post.body)
    assert message["request_id"] == rid and message["kind"] == "consent_requested"
    assert "Awaited from you by" in message["body"]
    for canary in personal_data(req):
        assert canary not in post.body.decode()


async def test_a_4xx_from_the_receiver_is_final_and_recorded(stack: Stack, receiver: Receiver) -> None:
    receiver.script = [410]
    req = await stack.request("routine-consent")
    rid = req.request_id
    await stack.client.submit(req)
    await stack.until(rid, lambda s: s.stage == "consent")
    assert len(receiver.at("/notify/np-teacher")) == 1  # not retried
    [row] = [r for r in await stack.store.outbox_for(rid) if r.kind == "consent_requested"]
    assert row.sent_at is None and row.failure == "webhook: HTTP 410"
    assert any(r.event == "notification_failed" for r in await stack.store.audit_trail(rid))


async def test_a_5xx_from_the_receiver_is_retried_and_accepted_once(stack: Stack, receiver: Receiver) -> None:
    receiver.script = [503]
    req = await stack.request("routine-consent")
    await stack.client.submit(req)
    await stack.until(req.request_id, lambda s: s.stage == "consent")
    posts = receiver.at("/notify/np-teacher")
    assert len(posts) == 2 and len({p.key for p in posts}) == 1 and len(receiver.accepted) == 1


async def test_a_bundle_is_pushed_signed_and_opens_with_the_recipients_key(stack: Stack, receiver: Receiver) -> None:
    req = await stack.request("emergency-override")
    rid = req.request_id
    await stack.client.submit(req)
    await stack.until(rid, lambda s: s.stage == "retrospective_review")
    [post] = receiver.at("/bundles")
    assert post.key == rid and post.headers["X-Safeshare-Sender"] == req.disclosing_agency
    stored = await stack.store.delivery(rid)
    assert post.body == stored.bundle and stored.pushed_at is not None
    keys = crypto.AgencyKeys.load(stack.settings.agency_key_file(RECIPIENT))
    _, plaintext = crypto.open_bundle(
        post.body, recipient=RECIPIENT, keys=keys,
        sender_public_b64=stack.client.directory.agency(req.disclosing_agency).signing_public_key)
    assert {i["id"] for i in json.loads(plaintext)["items"]} == {"incident", "address"}
    delivered = [r for r in await stack.store.audit_trail(rid) if r.event == "bundle_delivered"]
    assert json.loads(delivered[0].data)["channel"] == "webhook"


async def test_worker_killed_mid_delivery_still_delivers_exactly_once(
    settings: Settings, receiver: Receiver
) -> None:
    """A worker process is SIGKILLed after the receiver has the bundle but before the activity
    completes. Temporal retries it on a new worker with the same Idempotency-Key (the request id):
    the receiver counts one delivery, and the workflow goes on.

    On the real dev server: the time-skipping test server does not notice a killed worker's
    outstanding poll, as a real server does."""
    port = free_port()
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{port}", "task_queue": "kill-test"})
    server = await asyncio.create_subprocess_exec(
        *dev_server_args(settings, port, free_port()), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
    worker_env = {**os.environ, "SAFESHARE_HOME": str(settings.home), "SAFESHARE_TASK_QUEUE": settings.task_queue,
                  "TEMPORAL_ADDRESS": settings.temporal_address}
    worker = None
    codec = await open_codec(settings)
    try:
        temporal = await _connect_when_ready(settings, server, codec)
        worker = await asyncio.create_subprocess_exec(
            str(BIN / "safeshare"), "worker", env=worker_env, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        async with asyncio.timeout(30):
            while b"worker_started" not in (line := await worker.stderr.readline()):
                assert line, "the worker exited before it started"
        receiver.hold = asyncio.Event()
        directory = load_home(settings)[0]
        client = SafeshareClient(temporal, directory, settings.task_queue)
        req = example("emergency-override")
        rid = req.request_id
        await client.submit(req, demo_key(settings, directory, req.requested_by))
        async with asyncio.timeout(30):
            while rid not in receiver.accepted:
                receiver.arrived.clear()
                await receiver.arrived.wait()
        worker.send_signal(signal.SIGKILL)  # the receiver has it; the activity has not completed
        assert await worker.wait() == -signal.SIGKILL
        receiver.hold.set()
        store = await Store.open(settings.database_url, load_home(settings)[2])
        try:  # delivered to the receiver, never recorded as pushed: the window a crash leaves
            assert (await store.delivery(rid)).pushed_at is None
        finally:
            await store.close()

        async with running_worker(temporal, settings, settings.task_queue):
            # The dead worker's attempt times out on its missed heartbeats; the retry comes here.
            status = await until(client, rid, lambda s: s.stage == "retrospective_review", timeout=60)
            assert status.outcome == "shared"
            bundles = receiver.at("/bundles")
            assert len(bundles) == 2 and {b.key for b in bundles} == {rid}
            assert list(receiver.accepted) == [rid]  # exactly one delivery
            await temporal.get_workflow_handle(workflow_id(rid)).terminate("test finished")
    finally:
        for proc in (worker, server):
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()
        await codec.vault.close()


async def until(client: SafeshareClient, rid: str, check: Callable[[Status], bool], timeout: float) -> Status:
    """Wait for a condition on the request's status (queried, never slept on blindly). A query can
    time out while its workflow task moves to a live worker: that is a look that saw nothing."""
    return await eventually(f"request {rid}: the condition on its status", lambda: client.status(rid), check,
                            timeout=timeout, tolerate=(RPCError,))


@pytest.mark.parametrize(("change", "problem"), [
    ({"contact": {"notify": "webhook"}}, "webhook_url (contact np-teacher): required when notify is webhook"),
    ({"contact": {"webhook_url": "https://x.example/n"}}, "webhook_url (contact np-teacher): required when notify"),
    ({"contact": {"notify": "webhook", "webhook_url": "ftp://x.example"}},
     "webhook_url (contact np-teacher): an http(s) URL expected"),
    ({"agency": {"delivery": "webhook"}}, f"webhook_url (agency {RECIPIENT}): required when delivery is webhook"),
    ({"agency": {"delivery": "carrier-pigeon"}}, "agencies.3.delivery: Input should be 'inbox' or 'webhook'"),
])
def test_directory_channels_are_checked_naming_the_field(tmp_path: Path, change: dict, problem: str) -> None:
    """Each contact chooses its notification channel and each agency its delivery channel; a
    directory that half-configures a webhook is refused, naming the field and whose it is."""
    directory = yaml.safe_load((EXAMPLES / "directory.yaml").read_text())
    for agency in directory["agencies"]:
        agency.update(hpke_public_key="x", signing_public_key="x")
        if agency["id"] == RECIPIENT:
            agency.update(change.get("agency", {}))
        for contact in agency["contacts"]:
            if contact["id"] == "np-teacher":
                contact.update(change.get("contact", {}))
    path = tmp_path / "directory.yaml"
    path.write_text(yaml.safe_dump(directory))
    with pytest.raises(InputError) as err:
        read_directory(path)
    assert any(p.startswith(problem) for p in err.value.problems), err.value.problems
