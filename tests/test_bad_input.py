"""No input breaks intake: generated bad request files each get a clear error and exit code 2,
echo nothing they contained, and leave no workflow in Temporal and no row in the store."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import string
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from schemas import MAX_CONTENT_CHARS, workflow_id
from workers.cli import app

from .conftest import Stack, example

# CI runs the full thousand; a developer's run stays quick.
EXAMPLES = 1000 if os.environ.get("CI") == "true" else 150

BASE = example("routine-consent").model_dump(mode="json")
INJECTIONS = ["'; DROP TABLE audit;--", "{{7*7}}", "$(touch /tmp/pwned)", "<script>x</script>", "../../etc/passwd",
              "%s%s%n", "\\u0000", "Robert'); --", "${jndi:ldap://x}"]
# Paths to text fields (personal data lives in most of them).
TEXT_PATHS = [("subject", "name"), ("purpose", "statement"), ("items", 0, "content"), ("items", 1, "content")]
ID_PATHS = [("disclosing_agency",), ("recipient_agency",), ("requested_by",), ("items", 0, "id")]
REQUIRED_PATHS = [("subject",), ("subject", "name"), ("subject", "date_of_birth"), ("purpose",),
                  ("purpose", "statement"), ("items",), ("items", 0, "content"), ("lawful_basis",),
                  ("disclosing_agency",), ("recipient_agency",), ("urgency",), ("consent",)]
TYPED_PATHS = [("subject",), ("subject", "date_of_birth"), ("items",), ("items", 0), ("urgency",),
               ("purpose",), ("consent",), ("inform_subject",), ("subject", "looked_after")]


def _set(doc: dict, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


def _delete(doc: dict, path: tuple) -> None:
    for key in path[:-1]:
        doc = doc[key]
    del doc[path[-1]]


canary = st.builds(lambda n: f"Canary{n}Zq", st.integers(0, 10**9))
control = st.sampled_from(["\x00", "\x1b[2J", "\x07", "\x7f", "\x9b", "\x0b"])


@st.composite
def bad_documents(draw: st.DrawFn) -> tuple[str, str, list[str]]:
    """(file name, file text, values that must not be echoed)."""
    doc = copy.deepcopy(BASE)
    doc["request_id"] = draw(st.builds(lambda n: f"bad-{n}", st.integers(0, 10**12)))
    secret = draw(canary)
    doc["subject"]["name"] = secret
    hidden = [secret]
    kind = draw(st.sampled_from(["missing", "wrong_type", "unknown", "bad_id", "control", "huge", "syntax",
                                 "not_mapping"]))
    if kind == "missing":
        _delete(doc, draw(st.sampled_from(REQUIRED_PATHS)))
    elif kind == "wrong_type":
        path = draw(st.sampled_from(TYPED_PATHS))
        _set(doc, path, draw(st.sampled_from([123, 4.5, [1], {"x": 1}, None, "not-a-date-or-choice", True])))
        if path == ("subject", "looked_after"):  # a bool field: only a non-bool is wrong
            _set(doc, path, draw(st.sampled_from([[1], {"x": 1}, "perhaps", 7])))
    elif kind == "unknown":
        key = draw(st.text(string.ascii_letters + " '\"", min_size=1, max_size=20))
        where = draw(st.sampled_from([(), ("subject",), ("purpose",), ("items", 0)]))
        target = doc
        for k in where:
            target = target[k]
        target[f"x_{key}"] = secret
    elif kind == "bad_id":
        bad = draw(st.one_of(st.sampled_from(INJECTIONS), canary.map(lambda c: c + " with space")))
        _set(doc, draw(st.sampled_from(ID_PATHS)), bad)
        hidden.append(bad)
    elif kind == "control":
        bad = f"{draw(canary)}{draw(control)}tail"
        _set(doc, draw(st.sampled_from(TEXT_PATHS)), bad)
        hidden.append(bad)
    elif kind == "huge":
        doc["items"][0]["content"] = secret + "x" * draw(st.integers(MAX_CONTENT_CHARS, MAX_CONTENT_CHARS + 5000))
    fmt = draw(st.sampled_from(["yaml", "json"]))
    text = json.dumps(doc) if fmt == "json" else yaml.safe_dump(doc, allow_unicode=True)
    if kind == "syntax":
        text = text[: draw(st.integers(1, max(1, len(text) // 2)))] + draw(st.sampled_from(["{", "[", '"', ": :"]))
        fmt = "json" if fmt == "json" else "yaml"
        if fmt == "yaml":
            text += "\n  - ]: {"
    elif kind == "not_mapping":
        text = json.dumps([doc]) if fmt == "json" else yaml.safe_dump([secret])
    return f"request.{fmt}", text, hidden


async def test_generated_bad_request_files_are_refused_cleanly_and_start_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    """Bad input: a clear error naming the field, exit 2, no value echoed, nothing started."""
    env = {"SAFESHARE_HOME": str(stack.settings.home),
           "TEMPORAL_ADDRESS": stack.env.client.service_client.config.target_host,
           "SAFESHARE_TASK_QUEUE": stack.client.task_queue}
    runner = CliRunner()
    seen: set[str] = set()

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(bad_documents())
    def submit_is_refused(case: tuple[str, str, list[str]]) -> None:
        name, text, hidden = case
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        result = runner.invoke(app, ["submit", str(path)], env=env)
        assert result.exit_code == 2, result.output
        assert result.output.startswith("error: ") and ":" in result.output[7:]
        assert not any(h in result.output for h in hidden), result.output
        with contextlib.suppress(Exception):  # unparseable on purpose: no id to look for
            seen.add(json.loads(text)["request_id"] if name.endswith(".json") else yaml.safe_load(text)["request_id"])

    # The CLI runs its own event loop, so the examples run off this one.
    await asyncio.to_thread(submit_is_refused)
    assert seen
    for request_id in seen:
        assert not await stack.client._exists(workflow_id(request_id))
        assert not await stack.store.has_request(request_id)


async def test_a_file_over_the_size_limit_is_refused_before_it_is_read(stack: Stack, tmp_path: Path) -> None:
    """Huge input: a clear size limit, named in the error."""
    path = tmp_path / "huge.yaml"
    path.write_text("request_id: huge-1\nnotes: " + "x" * (3 * 1024 * 1024))
    env = {"SAFESHARE_HOME": str(stack.settings.home)}
    result = await asyncio.to_thread(CliRunner().invoke, app, ["submit", str(path)], env=env)
    assert result.exit_code == 2 and "file: at most 2000000 bytes expected" in result.output
