"""Notifications by e-mail, against a real SMTP server (aiosmtpd) on this machine.

Rules protected: the people awaited are told what is awaited of them and by when, with the
request id and never personal data (golden rule 7's record, the security model); each
notification is sent once under Temporal's retries, and a resend after a crash carries the same
Message-ID so the receiver can drop it; a refusing mail server never holds up the request.
"""

from __future__ import annotations

import email
import json
import threading
import time
import uuid
from email.message import Message
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from structlog.testing import capture_logs
from temporalio.testing import ActivityEnvironment
from typer.testing import CliRunner

from activities import Channels, MailDirSender, NotifyActivities, RecordActivities, WebhookSender, message_id
from clients import Settings
from clients._cli import app
from schemas import Directory, EventInput, NotifyInput, ShareRequest, StepsInput, StepsResult
from store import Store, make_engine
from workers import channels, ensure_demo_home

from .conftest import Stack
from .test_dev_server import free_port
from .test_store import T0


class Mailbox:
    """An SMTP server's message handler: keeps what it accepts; scripted replies come first."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.arrivals: list[float] = []  # time.monotonic() of each message's acceptance
        self.replies: list[str] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        with self.lock:
            if self.replies:
                return self.replies.pop(0)
            self.messages.append(email.message_from_bytes(envelope.content))
            self.arrivals.append(time.monotonic())
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Message]:
        with self.lock:
            return [m for m in self.messages if m["To"] == address]


@pytest.fixture
def mailbox() -> Mailbox:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    box.port = controller.port
    yield box
    controller.stop()


@pytest.fixture
def settings(tmp_path: Path, mailbox: Mailbox) -> Settings:
    """The worker sends through the test's SMTP server."""
    s = Settings.from_env({"SAFESHARE_HOME": str(tmp_path / "home"), "SAFESHARE_SMTP_HOST": "127.0.0.1",
                           "SAFESHARE_SMTP_PORT": str(mailbox.port)})
    ensure_demo_home(s)
    return s


def personal_data(req: ShareRequest) -> list[str]:
    """Canaries: none of these may appear in a notification."""
    return [req.subject.name, req.subject.date_of_birth.isoformat(),
            *(t.name for t in req.third_parties), *(i.content for i in req.items)]


def activities(stack: Stack) -> NotifyActivities:
    return NotifyActivities(stack.store, channels(stack.settings))


async def test_awaited_contact_is_emailed_what_by_when_without_personal_data(stack: Stack, mailbox: Mailbox) -> None:
    req = await stack.request("routine-consent")
    rid = req.request_id
    await stack.client.submit(req)
    status = await stack.until(rid, lambda s: s.stage == "consent")
    # Notified before the status shows them awaited: the message is already there.
    [msg] = mailbox.to("class-teacher@northfield.example")
    assert rid in msg["Subject"]
    body = msg.get_payload(decode=True).decode()
    assert f"Safeshare request {rid}: consent requested" in body
    assert f"Awaited from you by {status.awaiting.deadline:%Y-%m-%d %H:%M} UTC: the family's consent" in body
    [row] = [r for r in await stack.store.outbox_for(rid) if r.kind == "consent_requested"]
    assert row.channel == "email" and row.sent_at is not None
    assert msg["Message-ID"] == message_id(row.dedupe_key)
    raw = msg.as_string()
    for canary in personal_data(req):
        assert canary not in raw


async def test_a_retried_send_sends_nothing_twice_and_a_resend_keeps_its_message_id(
    stack: Stack, mailbox: Mailbox
) -> None:
    """Marked sent per outbox row: a retry sends only what is unsent. If a worker died after the
    server accepted a message but before marking it, the resend has the same Message-ID."""
    req = await stack.request("routine-consent")
    rid = req.request_id
    await stack.client.submit(req)
    await stack.until(rid, lambda s: s.stage == "consent")
    [row] = [r for r in await stack.store.outbox_for(rid) if r.kind == "consent_requested"]
    acts, again = activities(stack), NotifyInput(request_id=rid, step=row.step)
    assert (await ActivityEnvironment().run(acts.send_notifications, again)).sent == 0
    assert len(mailbox.to("class-teacher@northfield.example")) == 1

    engine = make_engine(stack.settings.database_url)  # the crash: sent, never marked
    async with engine.begin() as conn:
        await conn.execute(sa.text("UPDATE outbox SET sent_at = NULL WHERE id = :id"), {"id": row.id})
    await engine.dispose()
    assert (await ActivityEnvironment().run(acts.send_notifications, again)).sent == 1
    ids = {m["Message-ID"] for m in mailbox.to("class-teacher@northfield.example")}
    assert len(mailbox.to("class-teacher@northfield.example")) == 2 and len(ids) == 1


async def test_the_requester_is_told_where_the_reasons_for_a_decline_are_never_the_reasons(
    stack: Stack, mailbox: Mailbox
) -> None:
    """Golden rule 7 and the guidance on a decision not to share: the requester learns that the
    reasons are recorded and where to read them; the text stays in the store, encrypted under the
    request's key, never in an e-mail that deletion cannot reach."""
    reason = f"Not proportionate {uuid.uuid4().hex[:12]}"
    rid = await stack.declined(reason)
    [msg] = mailbox.to("ppu-officer@riverside-police.example")
    body = msg.get_payload(decode=True).decode()
    assert f"Safeshare request {rid}: request declined." in body
    assert f"The reasons for the decision are recorded and available through `safeshare records {rid}`." in body
    assert reason not in msg.as_string()


async def test_a_mail_server_saying_try_later_is_retried(stack: Stack, mailbox: Mailbox) -> None:
    mailbox.replies = ["451 4.3.0 Try again later"]
    req = await stack.request("routine-consent")
    await stack.client.submit(req)
    await stack.until(req.request_id, lambda s: s.stage == "consent")
    assert len(mailbox.to("class-teacher@northfield.example")) == 1
    assert mailbox.replies == []  # the refusal was met, then the retry went through


async def test_a_refused_message_is_recorded_and_the_request_goes_on(stack: Stack, mailbox: Mailbox) -> None:
    """SMTP 5xx is permanent: no retry, the failure is audited, and consent is still awaited."""
    mailbox.replies = ["550 5.1.1 Mailbox unavailable"]
    req = await stack.request("routine-consent")
    rid = req.request_id
    await stack.client.submit(req)
    await stack.until(rid, lambda s: s.stage == "consent")
    [row] = [r for r in await stack.store.outbox_for(rid) if r.kind == "consent_requested"]
    assert row.sent_at is None and row.failure == "smtp: server replied 550"
    failed = [r for r in await stack.store.audit_trail(rid) if r.event == "notification_failed"]
    assert len(failed) == 1 and "NotificationRefused" in failed[0].data
    assert mailbox.to("class-teacher@northfield.example") == []


async def test_a_notification_failed_step_is_stored_and_logged_on_the_first_attempt(
    store: Store, tmp_path: Path
) -> None:
    """A step's data never clashes with the log line's own fields: `notification_failed` names the
    step it could not notify (`step`). One attempt stores and logs it; none fails after the commit,
    so nothing is retried (a retry would find the step stored and log nothing)."""
    failed = EventInput(request_id="r-1", step="00007-notification_failed", event="notification_failed", at=T0,
                        data={"step": "00006-manager_asked", "cause": "NotificationRefused"})
    channels = Channels(email=MailDirSender(tmp_path, "safeshare@example.org"), webhook=WebhookSender(b"s"))
    record = RecordActivities(store, Directory(agencies=[]), NotifyActivities(store, channels))
    with capture_logs() as logs:
        result = await ActivityEnvironment().run(record.record_steps, StepsInput(request_id="r-1", events=[failed]))
    assert result == StepsResult()
    [entry] = await store.audit_trail("r-1")
    assert entry.step == failed.step and json.loads(entry.data) == failed.data
    [line] = [e for e in logs if e["event"] == "notification_failed"]
    assert line["step"] == failed.step and line["data"] == failed.data


def test_a_malformed_setting_is_named_and_exits_2(tmp_path: Path) -> None:
    env = {"SAFESHARE_HOME": str(tmp_path), "SAFESHARE_SMTP_PORT": "twenty-five"}
    result = CliRunner().invoke(app, ["records", "export", "--from", "2026-01-01", "--to", "2026-01-02"], env=env)
    assert result.exit_code == 2 and "SAFESHARE_SMTP_PORT: expected a port number from 1 to 65535" in result.stderr
