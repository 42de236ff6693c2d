"""`safeshare demo`: each example request driven by its scripted actors to its end state."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.text import Text

from clients import SafeshareClient, Settings, connect, open_codec, read_directory, read_request
from schemas import ShareRequest, Status

from ._actors import SCRIPTS, Actors, Step
from ._home import EXAMPLES, ensure_demo_home

out = Console(markup=False, emoji=False, highlight=False)  # text, never markup (clients/_cli.py's rule)


@dataclass(frozen=True)
class Story:
    """What the demo says of an example: at each stage its actors wait for, and of its outcome."""

    stages: dict[str, str]
    outcome: Callable[[Status], str] = lambda s: ""


STORIES = {
    "routine-consent": Story(
        {"consent": "consent sought", "manager_review": "consent given",
         "receipt": "DSL approved; sealed and delivered", "retention": "recorded"},
        lambda s: f"; content deleted on {s.retention_until:%Y-%m-%d}"),
    "emergency-override": Story(
        {"retrospective_review": "shared at once (emergency)", "retention": "retrospective review done"},
        lambda s: f"; consent basis: override ({s.override_ground})"),
    "health-special-category": Story(
        {"consent": "consent sought", "manager_review": "consent refused",
         "receipt": "override recorded; two of three items approved", "retention": "recorded"}),
    "police-inbound-declined": Story(
        {"manager_review": "police request received by the school", "retention": "declined and recorded"},
        lambda s: "; the requester was notified"),
}


class Narrator(Actors):
    """The actors, saying what happens as they see it: each stage once, and each receipt."""

    story: Story
    told: set[str]

    def looked(self, request: ShareRequest, stage: str | None, status: Status) -> None:
        if stage in self.told or stage not in self.story.stages:
            return
        self.told.add(stage)
        awaited = f", awaiting {status.awaiting.what} from {', '.join(status.awaiting.from_whom)}" \
            if status.awaiting and status.awaiting.from_whom else ""
        out.print(f"  {self.story.stages[stage]}: stage {stage}{awaited}")

    def step_taken(self, request: ShareRequest, step: Step, status: Status) -> None:
        if step.update == "acknowledge":
            agency = step.actor(self.cast(request))
            out.print(f"  {agency} opened the bundle: signature verified, content decrypted")
            out.print(f"  {agency} acknowledged receipt (signed)")


async def run_demo(settings: Settings) -> None:
    ensure_demo_home(settings)
    codec = await open_codec(settings)
    try:
        client = SafeshareClient(
            await connect(settings, codec), read_directory(settings.directory_file), settings.task_queue
        )
        # Acting on the stage the server holds, as any automated actor must (docs/VERSIONING.md).
        await _drive(Narrator(client, settings, open_bundles=True))
    finally:
        await codec.vault.close()


async def _drive(actors: Narrator) -> None:
    run = secrets.token_hex(3)  # a fresh id per run: request ids are idempotency keys
    for name, story in STORIES.items():
        request = read_request(EXAMPLES / "requests" / f"{name}.yaml")
        request = request.model_copy(update={"request_id": f"{request.request_id}-{run}"})
        await actors.submit(request)
        out.print(Text.assemble("\n", (name, "bold"), f" → submitted as {request.request_id}"))
        actors.story, actors.told = story, set()
        final = await actors.drive(request, SCRIPTS[name], until="retention")
        out.print(f"  outcome {final.outcome}{story.outcome(final)}")
    out.print("\nSee them in the Web UI, or: safeshare list; safeshare records ID")
