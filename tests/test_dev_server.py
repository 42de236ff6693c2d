"""End to end on the real Temporal dev server: `safeshare dev` as `make run` starts it, the CLI
driving one request from submit to its record, and a restart resuming the open request."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

from clients import Settings, connect, open_codec, read_directory
from schemas import SEARCH_ATTRIBUTES, ShareRequest
from workers import ACKNOWLEDGE, APPROVE, CONSENT_GIVEN, Cast, Step, eventually

from .conftest import EXAMPLES

SAFESHARE = str(Path(sys.executable).parent / "safeshare")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DevStack:
    def __init__(self, home: Path) -> None:
        self.home, self.port, self.ui_port, self.codec_port = home, free_port(), free_port(), free_port()
        self.metrics_port = free_port()
        self.env = {**os.environ, "SAFESHARE_HOME": str(home), "TEMPORAL_ADDRESS": f"127.0.0.1:{self.port}",
                    "SAFESHARE_CODEC_PORT": str(self.codec_port), "SAFESHARE_METRICS_PORT": str(self.metrics_port),
                    "SAFESHARE_CENSUS_SECONDS": "0.2"}
        self.settings = Settings.from_env(self.env)
        self.proc: asyncio.subprocess.Process | None = None
        self.log: list[bytes] = []  # every line the stack (server launcher and worker) wrote

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            SAFESHARE, "dev", "--port", str(self.port), "--ui-port", str(self.ui_port), env=self.env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        # Ready when the worker says so: wait on its log line, not on a clock.
        async with asyncio.timeout(90):
            while b"worker_started" not in (line := await self.proc.stderr.readline()):
                assert line, "safeshare dev exited before its worker started"
                self.log.append(line)
            self.log.append(line)

    async def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        self.log.append(await self.proc.stderr.read())
        return await asyncio.wait_for(self.proc.wait(), 60)

    async def cli(self, *args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            SAFESHARE, *args, env=self.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        output, _ = await proc.communicate()
        self.log.append(output)
        return proc.returncode or 0, output.decode()

    async def act(self, request: ShareRequest, step: Step) -> None:
        """One actor's step, as they type it."""
        directory = read_directory(self.settings.directory_file)
        code, output = await self.cli(*step.argv(request.request_id, Cast.of(request, directory), self.settings))
        assert code == 0, output

    async def census(self, stage: str, expected: float) -> None:
        """Wait until the worker's census reports `expected` open requests in `stage`."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        pattern = re.compile(rf'^safeshare_requests{{[^}}]*stage="{stage}"[^}}]*}} (\S+)$', re.MULTILINE)

        async def counted() -> float | None:
            body = (await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read())).decode()
            return float(found.group(1)) if (found := pattern.search(body)) else None

        await eventually(f"census: {expected:g} open in {stage}", counted, lambda n: n == expected)

    async def until_stage(self, rid: str, stage: str) -> dict:
        """Its status, once the server holds the request at `stage` (`list` shows it there): what
        actors act on, and, unlike a query answered mid-task, a stage whose work is done."""
        async def listed() -> list[str] | str:
            code, output = await self.cli("list", "--stage", stage, "--json")
            return [r["request_id"] for r in json.loads(output)] if code == 0 else output.strip()

        await eventually(f"request {rid}: listed at {stage}", listed, lambda ids: isinstance(ids, list) and rid in ids)
        code, output = await self.cli("status", rid, "--json")
        assert code == 0, output
        return json.loads(output)


@pytest.fixture
async def dev(tmp_path: Path):
    stack = DevStack(tmp_path / "var")
    await stack.start()
    yield stack
    if stack.proc and stack.proc.returncode is None:
        await stack.stop()


async def test_make_run_stack_serves_the_ui_with_search_attributes_and_stops_cleanly(dev: DevStack) -> None:
    """Operators: the Web UI is up and every search attribute is registered; Ctrl-C stops cleanly."""
    url = f"http://127.0.0.1:{dev.ui_port}/"
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read())
    assert b"<html" in body.lower()
    ui_settings = await asyncio.to_thread(
        lambda: urllib.request.urlopen(f"{url}api/v1/settings", timeout=10).read())  # noqa: S310
    # The UI is wired to our codec server (the operator signs in there to decode).
    assert json.loads(ui_settings)["Codec"]["Endpoint"] == f"http://127.0.0.1:{dev.codec_port}"
    settings = dev.settings
    codec = await open_codec(settings)
    client = await connect(settings, codec)
    await codec.vault.close()
    listed = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace="default"))
    assert set(SEARCH_ATTRIBUTES) <= set(listed.custom_attributes)
    assert (dev.home / "temporal.db").exists() and (dev.home / "directory.yaml").exists()
    assert oct((dev.home / "keys" / "store.key").stat().st_mode & 0o777) == "0o600"
    # The codec server is up with the stack, and answers no one without the operator token.
    decode = urllib.request.Request(f"http://127.0.0.1:{dev.codec_port}/decode", data=b'{"payloads": []}')
    with pytest.raises(urllib.error.HTTPError) as refused:
        await asyncio.to_thread(urllib.request.urlopen, decode, timeout=10)
    assert refused.value.code == 401
    token = (dev.home / "keys" / "codec-token").read_text().strip()
    decode.add_header("Authorization", f"Bearer {token}")
    answer = await asyncio.to_thread(lambda: urllib.request.urlopen(decode, timeout=10).read())  # noqa: S310
    assert json.loads(answer) == {}
    assert await dev.stop() == 0


async def test_cli_drives_a_request_from_submit_to_record_and_survives_a_restart(
    dev: DevStack, tmp_path: Path
) -> None:
    """The whole lifecycle through the CLI on the real server; a restart resumes the open request."""
    data = yaml.safe_load((EXAMPLES / "requests" / "routine-consent.yaml").read_text())
    rid = data["request_id"] = f"e2e-{os.getpid()}"
    path = tmp_path / "request.yaml"
    path.write_text(yaml.safe_dump(data))
    request = ShareRequest.model_validate(data)

    assert (await dev.cli("submit", str(path), "--key", str(dev.settings.contact_key_file("np-teacher"))))[0] == 0
    await dev.until_stage(rid, "consent")
    code, output = await dev.cli("list", "--stage", "consent", "--json")
    assert code == 0 and rid in [r["request_id"] for r in json.loads(output)]
    # Operators see it in the worker's metrics too: the census counts open requests by stage.
    await dev.census("consent", 1)

    # The stack goes down and comes back: the open request is still there, still waiting.
    assert await dev.stop() == 0
    await dev.start()
    await dev.until_stage(rid, "consent")

    await dev.act(request, CONSENT_GIVEN)
    await dev.until_stage(rid, "manager_review")
    code, output = await dev.cli("decide", rid, "--approve", "--manager", "np-teacher", "--reason", "x")
    assert code == 2 and "not in the escalation chain" in output
    await dev.act(request, APPROVE)
    await dev.until_stage(rid, "receipt")

    key = str(dev.home / "keys" / "agencies" / "county-childrens-services.key")
    code, output = await dev.cli("inbox", "open", rid, "--agency", "county-childrens-services", "--key", key)
    assert code == 0 and "signature verified" in output and "Mondays" in output
    wrong = str(dev.home / "keys" / "agencies" / "riverside-police.key")
    code, output = await dev.cli("inbox", "open", rid, "--agency", "county-childrens-services", "--key", wrong)
    assert code == 2 and "bundle cannot be opened" in output and "Mondays" not in output
    await dev.act(request, ACKNOWLEDGE)
    await dev.until_stage(rid, "retention")

    await dev.census("retention", 1)
    await dev.census("consent", 0)

    code, output = await dev.cli("records", rid, "--json")
    trail = json.loads(output)
    assert code == 0 and trail["record"]["outcome"] == "shared"
    assert [e["event"] for e in trail["trail"]][:2] == ["request_accepted", "consent_requested"]
    assert "Mondays" not in output


async def test_demo_drives_every_example_to_its_end_state(dev: DevStack) -> None:
    """`safeshare demo` (make demo): the four examples, every actor signing, each to its end state."""
    code, output = await dev.cli("demo")
    assert code == 0, output
    assert output.count("signature verified") == 3 and output.count("acknowledged receipt (signed)") == 3
    assert "outcome shared" in output and "outcome not_shared" in output
    assert "Alex Example" not in output  # the demo narrates stages, never the child
