"""Property and tamper tests for the codec, sealed bundles and signatures, and the codec server's doors."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import ClientSession, CookieJar
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.failure.v1 import Failure
from temporalio.converter import WorkflowSerializationContext
from temporalio.exceptions import ApplicationError

import crypto
from crypto._bundle import _SUITES
from crypto._keys import hpke_public_key
from workers._codec_server import start_codec_server

ORIGIN = "http://127.0.0.1:8233"
# Enough examples to mean something, few enough to keep the suite in seconds.
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[asyncio.Runner, crypto.EncryptionCodec]]:
    """One event loop and one codec for a module of synchronous property tests."""
    home = tmp_path_factory.mktemp("codec")
    with asyncio.Runner() as r:
        ring = crypto.KeyRing.create(home / "ring.json")
        vault = r.run(crypto.HistoryKeys.open(f"sqlite+aiosqlite:///{home / 'vault.db'}", ring))
        yield r, crypto.EncryptionCodec(vault)
        r.run(vault.close())


def _for(codec: crypto.EncryptionCodec, workflow_id: str | None) -> crypto.EncryptionCodec:
    if workflow_id is None:
        return codec
    return codec.with_context(WorkflowSerializationContext(namespace="default", workflow_id=workflow_id))


payloads = st.lists(
    st.builds(lambda enc, data: Payload(metadata={"encoding": enc}, data=data),
              st.sampled_from([b"json/plain", b"binary/null", b"json/protobuf"]), st.binary(max_size=2048)),
    min_size=1, max_size=4,
)
workflow_ids = st.one_of(st.none(), st.sampled_from(["share-a", "share-b", "other-workflow"]))


@PROPERTY
@given(values=payloads, wf_id=workflow_ids)
def test_codec_round_trips_and_never_leaves_plaintext(runner, values: list[Payload], wf_id: str | None) -> None:
    """Security model: what Temporal stores is ciphertext; the codec gives back exactly what went in."""
    loop, codec = runner
    encoded = loop.run(_for(codec, wf_id).encode(values))
    assert all(p.metadata["encoding"] == b"binary/encrypted" for p in encoded)
    for original, sealed in zip(values, encoded, strict=True):
        assert len(original.data) < 8 or original.data not in sealed.data
    assert loop.run(codec.decode(encoded)) == values


@PROPERTY
@given(values=payloads, wf_id=workflow_ids, where=st.integers(min_value=0), bit=st.integers(0, 7),
       target=st.sampled_from(["data", "key"]))
def test_any_tampering_with_an_encoded_payload_gives_one_error(
    runner, values: list[Payload], wf_id: str | None, where: int, bit: int, target: str
) -> None:
    """One clear error, and no detail of which check failed (cryptography's InvalidToken habit)."""
    loop, codec = runner
    sealed = loop.run(_for(codec, wf_id).encode(values[:1]))[0]
    if target == "data":
        data = bytearray(sealed.data)
        data[where % len(data)] ^= 1 << bit
        sealed.data = bytes(data)
    else:
        sealed.metadata["safeshare-key"] = b"req:share-someone-else" if bit % 2 else b"ring:k99"
    with pytest.raises(crypto.CryptoError) as err:
        loop.run(codec.decode([sealed]))
    assert str(err.value) == crypto.UNREADABLE


AGENCY_KEYS = {suite: (crypto.AgencyKeys.generate(suite), crypto.AgencyKeys.generate(suite)) for suite in crypto.SUITES}
SENDER = crypto.AgencyKeys.generate()


def _seal(content: bytes, suite: str, recipient: str = "to-agency") -> bytes:
    header = crypto.BundleHeader("req-1", "from-agency", recipient, suite)
    return crypto.seal(content, header, AGENCY_KEYS[suite][0].hpke_public_b64, SENDER.signing)


def _open(bundle: bytes, suite: str, keys: crypto.AgencyKeys | None = None, sender: str | None = None,
          recipient: str = "to-agency") -> bytes:
    return crypto.open_bundle(bundle, recipient=recipient, keys=keys or AGENCY_KEYS[suite][0],
                              sender_public_b64=sender or SENDER.signing_public_b64)[1]


@settings(max_examples=60, deadline=None)
@given(content=st.binary(max_size=4096), suite=st.sampled_from(crypto.SUITES))
def test_sealed_bundles_open_only_for_their_recipient_from_their_sender(content: bytes, suite: str) -> None:
    """Only the recipient's private key opens a bundle; the signature proves the sender (both suites)."""
    bundle = _seal(content, suite)
    assert _open(bundle, suite) == content
    wrong = [
        {"keys": AGENCY_KEYS[suite][1]},  # another agency's key
        {"sender": crypto.AgencyKeys.generate().signing_public_b64},  # not signed by the named sender
        {"recipient": "another-agency"},  # meant for someone else
    ]
    for case in wrong:
        with pytest.raises(crypto.CryptoError) as err:
            _open(bundle, suite, **case)
        assert str(err.value) == crypto.UNOPENABLE


def _split(bundle: bytes) -> tuple[dict, bytes]:
    """A v2 bundle's parts: magic, header length, header JSON, raw ciphertext."""
    assert bundle[:4] == b"SSB2"
    size = int.from_bytes(bundle[4:8], "big")
    return json.loads(bundle[8 : 8 + size]), bundle[8 + size :]


def _join(header: dict, sealed: bytes) -> bytes:
    head = json.dumps(header).encode()
    return b"SSB2" + len(head).to_bytes(4, "big") + head + sealed


@settings(max_examples=80, deadline=None)
@given(suite=st.sampled_from(crypto.SUITES), field=st.sampled_from(["sealed", "signature", "recipient", "sender",
                                                                     "request_id", "suite"]),
       where=st.integers(min_value=0))
def test_a_tampered_bundle_fails_with_one_error(suite: str, field: str, where: int) -> None:
    """Altering any part of the envelope (ciphertext, signature, addressing) is detected."""
    header, sealed = _split(_seal(b"the content", suite))
    if field == "sealed":
        raw = bytearray(sealed)
        raw[where % len(raw)] ^= 0x01
        sealed = bytes(raw)
    elif field == "signature":
        raw = bytearray(crypto.unb64(header[field]))
        raw[where % len(raw)] ^= 0x01
        header[field] = crypto.b64(bytes(raw))
    elif field == "suite":
        header[field] = next(s for s in crypto.SUITES if s != suite)
    else:
        header[field] = header[field] + "x"
    with pytest.raises(crypto.CryptoError) as err:
        _open(_join(header, sealed), suite, recipient=header["recipient"])
    assert str(err.value) == crypto.UNOPENABLE


@settings(max_examples=80, deadline=None)
@given(where=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_any_flipped_bit_or_cut_makes_a_bundle_unopenable(where: int, bit: int) -> None:
    """Framing included: the magic, the header's length, the header, the ciphertext."""
    bundle = bytearray(_seal(b"the content", "X25519"))
    flipped = bytearray(bundle)
    flipped[where % len(bundle)] ^= 1 << bit
    for altered in (bytes(flipped), bytes(bundle[: where % len(bundle)])):
        with pytest.raises(crypto.CryptoError) as err:
            _open(altered, "X25519")
        assert str(err.value) == crypto.UNOPENABLE


def _seal_v1(content: bytes, suite: str) -> bytes:
    """A bundle as v1 sealed them (one JSON object, the ciphertext in base64): still in inboxes."""
    header = crypto.BundleHeader("req-1", "from-agency", "to-agency", suite)
    sealed = _SUITES[suite].encrypt(content, hpke_public_key(suite, AGENCY_KEYS[suite][0].hpke_public_b64),
                                    info=header.info())
    return json.dumps({"format": "safeshare-bundle-v1", "request_id": "req-1", "sender": "from-agency",
                       "recipient": "to-agency", "suite": suite, "sealed": crypto.b64(sealed),
                       "signature": crypto.b64(SENDER.signing.sign(header.signed(sealed)))}).encode()


@pytest.mark.parametrize("suite", crypto.SUITES)
def test_bundles_sealed_in_the_v1_format_still_open_and_still_refuse_tampering(suite: str) -> None:
    bundle = _seal_v1(b"sealed last year", suite)
    assert _open(bundle, suite) == b"sealed last year"
    assert crypto.read_header(bundle) == crypto.BundleHeader("req-1", "from-agency", "to-agency", suite)
    envelope = json.loads(bundle)
    envelope["recipient"] = "another-agency"
    with pytest.raises(crypto.CryptoError) as err:
        _open(json.dumps(envelope).encode(), suite, recipient="another-agency")
    assert str(err.value) == crypto.UNOPENABLE


@settings(max_examples=100, deadline=None)
@given(message=st.binary(max_size=512), flip=st.integers(min_value=0))
def test_signatures_verify_only_the_signed_bytes_under_the_signers_key(message: bytes, flip: int) -> None:
    key = crypto.SigningKey.generate()
    signature = key.sign(message)
    crypto.verify(key.public_b64, signature, message)
    altered = bytearray(message + b"!")
    altered[flip % len(altered)] ^= 0x01
    with pytest.raises(crypto.CryptoError):
        crypto.verify(key.public_b64, signature, bytes(altered))
    with pytest.raises(crypto.CryptoError):
        crypto.verify(crypto.SigningKey.generate().public_b64, signature, message)


def test_everything_the_cli_creates_under_safeshare_home_is_owner_only(tmp_path: Path) -> None:
    """Files under SAFESHARE_HOME are 0600 and its folders 0700, the SQLite store included: the
    console script sets a private umask before anything is created, for every process it starts."""
    home = tmp_path / "home"
    env = {**os.environ, "SAFESHARE_HOME": str(home)}
    env.pop("SAFESHARE_DATABASE_URL", None)
    for args in (["db", "upgrade"], ["keys", "init", "--contact", "t-person"]):
        subprocess.run([str(Path(sys.executable).parent / "safeshare"), *args], env=env, check=True,
                       capture_output=True)
    made = [home, *home.rglob("*")]
    assert any(p.suffix == ".db" for p in made) and any(p.suffix == ".key" for p in made)
    modes = {p.relative_to(tmp_path).as_posix(): oct(p.stat().st_mode & 0o777) for p in made}
    assert modes == {k: "0o700" if (tmp_path / k).is_dir() else "0o600" for k in modes}


def test_key_files_are_owner_only(tmp_path: Path) -> None:
    """Private keys on disk are 0600, in a 0700 directory, from the moment they exist."""
    for path, save in [
        (tmp_path / "k" / "agency.key", crypto.AgencyKeys.generate().save),
        (tmp_path / "k" / "person.key", crypto.SigningKey.generate().save),
    ]:
        save(path)
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.parent.stat().st_mode & 0o777 == 0o700
    assert crypto.AgencyKeys.load(tmp_path / "k" / "agency.key").suite == "MLKEM768_X25519"
    ring = crypto.KeyRing.create(tmp_path / "k" / "ring.json")
    assert ring.path.stat().st_mode & 0o777 == 0o600


async def test_failure_messages_and_stack_traces_are_encrypted_too(runner) -> None:
    """Temporal does not encode failures by default; ours go through the codec like any payload."""
    _, codec = runner  # payloads of no workflow: the ring alone, no vault round trip
    converter = crypto.data_converter(codec)
    failure = Failure()
    try:
        raise ApplicationError("CanaryFailureMessage", type="Example")
    except ApplicationError as err:
        await converter.encode_failure(err, failure)
    wire = failure.SerializeToString()
    assert b"CanaryFailureMessage" not in wire and failure.message == "Encoded failure"
    decoded = await converter.decode_failure(failure)
    assert isinstance(decoded, ApplicationError) and decoded.message == "CanaryFailureMessage"


def test_the_converter_in_a_payloads_context_keeps_every_sdk_component(runner) -> None:
    """The codec picks the request's key by the payload's context. Our converter clones itself for
    that context without the SDK's `dataclasses.replace` (docs/PERFORMANCE.md), so it must carry
    over every field the SDK's DataConverter has: a field added by an SDK upgrade fails here, not
    as a payload encoded without its context."""
    import dataclasses

    from temporalio.converter import DataConverter

    _, codec = runner
    converter = crypto.data_converter(codec)
    context = WorkflowSerializationContext(namespace="default", workflow_id="share-r-clone")
    cloned = converter.with_context(context)
    assert {f.name for f in dataclasses.fields(DataConverter)} == {
        "payload_converter_class", "payload_codec", "failure_converter_class", "payload_converter",
        "failure_converter", "external_storage"}
    assert cloned.payload_codec.workflow_id == "share-r-clone" and converter.payload_codec.workflow_id is None
    for name in ("payload_converter_class", "failure_converter_class", "payload_converter", "failure_converter",
                 "external_storage"):
        assert getattr(cloned, name) is getattr(converter, name), name


def test_keys_init_writes_an_owner_only_key_and_never_overwrites(tmp_path: Path, monkeypatch) -> None:
    """`safeshare keys init`: the private key in a 0600 file, the public key printed for the directory."""
    from typer.testing import CliRunner

    from clients._cli import app

    monkeypatch.setenv("SAFESHARE_HOME", str(tmp_path))
    cli = CliRunner()
    made = cli.invoke(app, ["keys", "init", "--agency", "new-agency", "--suite", "X25519"])
    assert made.exit_code == 0, made.output
    path = tmp_path / "keys" / "agencies" / "new-agency.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert crypto.AgencyKeys.load(path).hpke_public_b64 in made.stdout
    again = cli.invoke(app, ["keys", "init", "--agency", "new-agency"])
    assert again.exit_code == 2 and "never overwritten" in again.output
    bad = cli.invoke(app, ["keys", "init", "--contact", "m", "--suite", "RSA"])
    assert bad.exit_code == 2 and "suite" in bad.output
    person = cli.invoke(app, ["keys", "init", "--contact", "new-manager"])
    assert person.exit_code == 0 and "signing_public_key" in person.stdout


# --- the codec server ----------------------------------------------------------------------------


@pytest.fixture
async def codec_server(tmp_path: Path, unused_tcp_port: int):
    ring = crypto.KeyRing.create(tmp_path / "ring.json")
    vault = await crypto.HistoryKeys.open(f"sqlite+aiosqlite:///{tmp_path / 'vault.db'}", ring)
    codec = crypto.EncryptionCodec(vault)
    runner = await start_codec_server(codec, "the-token", (ORIGIN,), "127.0.0.1", unused_tcp_port)
    # unsafe=True: the jar keeps cookies for an IP-address host, as a browser does.
    async with ClientSession(f"http://127.0.0.1:{unused_tcp_port}", cookie_jar=CookieJar(unsafe=True)) as http:
        yield http, codec
    await runner.cleanup()
    await vault.close()


def _body(payloads: list[Payload]) -> str:
    return json_format.MessageToJson(Payloads(payloads=payloads))


async def test_codec_server_decodes_only_for_the_token_holder_from_the_uis_origin(codec_server) -> None:
    """Decoding in the Web UI is for an authorised operator only: token required, UI origin only."""
    http, codec = codec_server
    secret = Payload(metadata={"encoding": b"json/plain"}, data=b'"Canary Child"')
    body = _body(await codec.with_context(
        WorkflowSerializationContext(namespace="default", workflow_id="share-x")).encode([secret]))
    bearer = {"Authorization": "Bearer the-token", "Content-Type": "application/json"}

    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic the-token"}):
        async with http.post("/decode", data=body, headers=headers) as r:
            assert r.status == 401 and "Canary" not in await r.text()
    async with http.post("/decode", data=body, headers={**bearer, "Origin": "http://evil.example"}) as r:
        assert r.status == 403 and "Canary" not in await r.text()
    async with http.options("/decode", headers={"Origin": "http://evil.example"}) as r:
        assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers

    async with http.options("/default/decode", headers={"Origin": ORIGIN,
                                                        "Access-Control-Request-Method": "POST"}) as r:
        assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == ORIGIN
    async with http.post("/decode", data=body, headers={**bearer, "Origin": ORIGIN}) as r:
        assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == ORIGIN
        decoded = json_format.Parse(await r.text(), Payloads())
    assert list(decoded.payloads) == [secret]

    tampered = json.loads(body)
    tampered["payloads"][0]["metadata"]["safeshare-key"] = crypto.b64(b"ring:k9")
    async with http.post("/decode", data=json.dumps(tampered), headers=bearer) as r:
        assert r.status == 422 and await r.text() == crypto.UNREADABLE


async def test_codec_server_browser_sign_in_sets_a_session_cookie_only_for_the_right_token(codec_server) -> None:
    """The Web UI's browser signs in once with the token; the cookie, not the token, is kept."""
    http, codec = codec_server
    async with http.post("/login", data={"token": "wrong"}) as r:
        assert r.status == 401
    # Another site's page cannot sign a visitor in (login CSRF): only this server's own form may.
    async with http.post("/login", data={"token": "the-token"}, headers={"Origin": "http://elsewhere.example"}) as r:
        assert r.status == 403
    assert len(http.cookie_jar) == 0
    async with http.post("/login", data={"token": "the-token"}) as r:
        assert r.status == 200
        cookie = r.cookies["safeshare_codec"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and "the-token" not in cookie.value
    encoded = await codec.encode([Payload(metadata={"encoding": b"json/plain"}, data=b"1")])
    async with http.post("/encode", data=_body(encoded), headers={"Origin": ORIGIN}) as r:
        assert r.status == 200


@pytest.mark.parametrize("source", ["/dev/zero", "large"])
def test_a_key_file_is_read_only_up_to_a_bound(tmp_path: Path, source: str) -> None:
    """A device or a large file given as a key (`--key /dev/zero`) is refused with one error
    naming the file, instead of reading until memory runs out."""
    path = Path(source) if source.startswith("/") else tmp_path / source
    if not source.startswith("/"):
        path.write_bytes(b"k" * (crypto.MAX_SECRET_BYTES + 1))
    with pytest.raises(crypto.CryptoError, match=f"key file {path.name}: larger than a key file can be"):
        crypto.read_secret(path)
