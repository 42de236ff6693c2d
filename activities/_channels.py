"""Where notifications and sealed bundles go: SMTP, a mail directory (dev), and signed webhooks.

Every send carries a key derived from what is being sent (the outbox row's dedupe key, or the
request id for a bundle) as its Message-ID or Idempotency-Key, so a receiver can drop the second
copy that a retry after a crash may send. Receivers refusing a message (SMTP 5xx, HTTP 4xx) raise
`Rejected`, which retrying cannot fix; anything else raises `Unavailable`, which it may.

aiohttp and aiosmtplib are imported where they send: every `safeshare` command imports this
module, and only workers send.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

import crypto
from schemas import Notification

SIGNATURE_HEADER = "X-Safeshare-Signature"


class ChannelError(Exception):
    """A send failed; the message names the channel and a status, never the message's content."""


class Rejected(ChannelError):
    """The receiver refused it: sending again will not help."""


class Unavailable(ChannelError):
    """The receiver could not be reached or failed for now: a retry may succeed."""


def idempotency_key(dedupe_key: str) -> str:
    return hashlib.sha256(dedupe_key.encode()).hexdigest()


def message_id(dedupe_key: str) -> str:
    # 128 bits of the key: unique enough, and short enough that the header is never folded.
    return f"<{idempotency_key(dedupe_key)[:32]}@safeshare>"


def email_message(msg: Notification, sender: str) -> EmailMessage:
    email = EmailMessage()
    email["From"] = sender
    email["To"] = msg.address
    email["Subject"] = msg.subject
    email["Date"] = formatdate(usegmt=True)
    email["Message-ID"] = message_id(msg.dedupe_key)
    email["X-Safeshare-Request"] = msg.request_id
    email.set_content(msg.body)
    return email


@dataclass(frozen=True)
class SmtpSender:
    host: str
    port: int
    sender: str
    starttls: bool = False
    timeout: float = 30.0

    async def send(self, msg: Notification) -> None:
        import aiosmtplib

        try:
            await aiosmtplib.send(
                email_message(msg, self.sender), hostname=self.host, port=self.port,
                start_tls=self.starttls, timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as err:
            codes = [r.code for r in err.recipients]
            kind = Rejected if all(c >= 500 for c in codes) else Unavailable
            raise kind(f"smtp: recipient refused ({codes})") from None
        except aiosmtplib.SMTPResponseException as err:
            raise (Rejected if err.code >= 500 else Unavailable)(f"smtp: server replied {err.code}") from None
        except (aiosmtplib.SMTPException, OSError) as err:
            raise Unavailable(f"smtp: {type(err).__name__}") from None


@dataclass(frozen=True)
class MailDirSender:
    """Development without an SMTP server: each e-mail becomes one .eml file, named by its key,
    so a retried send rewrites the same file instead of adding a second."""

    directory: Path
    sender: str

    async def send(self, msg: Notification) -> None:
        await asyncio.to_thread(self._write, msg)

    def _write(self, msg: Notification) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        final = self.directory / f"{idempotency_key(msg.dedupe_key)}.eml"
        tmp = final.with_suffix(".tmp")
        tmp.write_bytes(email_message(msg, self.sender).as_bytes())
        os.replace(tmp, final)


@dataclass(frozen=True)
class WebhookSender:
    """HTTP POST; the body is HMAC-SHA256-signed with the deployment's webhook secret."""

    secret: bytes
    timeout: float = 10.0

    async def post(self, url: str, body: bytes, content_type: str, key: str, headers: Mapping[str, str]) -> None:
        import aiohttp

        signed = {
            "Content-Type": content_type,
            "Idempotency-Key": key,
            SIGNATURE_HEADER: "sha256=" + crypto.hmac_sha256_hex(self.secret, body),
            **headers,
        }
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as session,
                session.post(url, data=body, headers=signed, allow_redirects=False) as response,
            ):
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as err:
            raise Unavailable(f"webhook: {type(err).__name__}") from None
        if 400 <= status < 500 and status not in (408, 429):
            raise Rejected(f"webhook: HTTP {status}")
        if not 200 <= status < 300:
            raise Unavailable(f"webhook: HTTP {status}")

    async def send(self, msg: Notification) -> None:
        key = idempotency_key(msg.dedupe_key)
        body = json.dumps({
            "type": "notification", "id": key, "request_id": msg.request_id, "kind": msg.kind,
            "subject": msg.subject, "body": msg.body,
        }, sort_keys=True).encode()
        await self.post(msg.address, body, "application/json", key, {"X-Safeshare-Request": msg.request_id})


@dataclass(frozen=True)
class Channels:
    """The senders a worker uses: e-mail (SMTP, or a mail directory in development) and webhooks."""

    email: SmtpSender | MailDirSender
    webhook: WebhookSender

    async def send(self, msg: Notification) -> None:
        if msg.channel == "webhook":
            await self.webhook.send(msg)
        else:
            await self.email.send(msg)
