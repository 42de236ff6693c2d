"""The codec server: decodes payloads for the Temporal Web UI and CLI, for an authorised operator only.

Temporal's remote codec contract: `POST /encode` and `POST /decode` take and return
`{"payloads": [...]}` in protobuf JSON. Who may call:

- a request with `Authorization: Bearer <token>` (the token in `keys/codec-token`): the Temporal
  CLI (`--codec-auth`) and scripts;
- a browser that signed in at `/login` with that token: it holds an HttpOnly, SameSite=Strict
  session cookie, which the Web UI sends when "Include cross-origin credentials" is on (the UI
  and this server are the same site, different ports).

Browsers are only answered for the UI's own origins (CORS); anything else gets 403 and no detail.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

import crypto

log = structlog.get_logger("safeshare.codec_server")

COOKIE = "safeshare_codec"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_LOGIN_PAGE = """<!doctype html><html lang="en"><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Safeshare codec server</title>
<body style="font-family:sans-serif;max-width:36em;margin:3em auto;padding:0 1em">
<main><h1>Safeshare codec server</h1>
<p>Paste the operator token (<code>safeshare keys token</code>) to let this browser's Temporal
Web UI decode payloads. Then, in the UI: Settings (the codec icon) &rarr; check
<em>Include cross-origin credentials</em>.</p>
<form method="post" action="/login"><label for="token">Operator token</label><br>
<input id="token" name="token" type="password" size="50" autocomplete="off" autofocus>
<button>Sign in</button></form></main></html>"""


def _session(token: str) -> str:
    # The cookie holds a value derived from the token, not the token itself.
    return hmac.new(token.encode(), b"safeshare codec session", hashlib.sha256).hexdigest()


def create_app(codec: crypto.EncryptionCodec, token: str, ui_origins: tuple[str, ...]) -> web.Application:
    origins = frozenset(ui_origins)
    session = _session(token)

    def authorised(request: web.Request) -> bool:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and hmac.compare_digest(auth[7:].strip(), token):
            return True
        return hmac.compare_digest(request.cookies.get(COOKIE, ""), session)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        # The sign-in page's own form posts from this server's origin, as a browser says it does.
        own_form = request.path == "/login" and origin == f"{request.scheme}://{request.host}"
        if origin is not None and origin not in origins and not own_form:
            log.warning("codec_refused", reason="origin", path=request.path)
            return web.Response(status=403, text="forbidden")
        if request.method == "OPTIONS":  # CORS preflight: nothing decoded, no token needed
            response: web.StreamResponse = web.Response(status=204)
        elif request.path in ("/login", "/health") or authorised(request):
            response = await handler(request)
        else:
            log.warning("codec_refused", reason="unauthorised", path=request.path)
            response = web.Response(status=401, text="unauthorised", headers={"WWW-Authenticate": "Bearer"})
        if origin in origins:
            response.headers.update({
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Credentials": "true",
                "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": "Content-Type, X-Namespace, Authorization",
                "Vary": "Origin",
            })
        response.headers["Cache-Control"] = "no-store"
        return response

    def endpoint(transform: Callable[..., Awaitable[list]]) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            try:
                payloads = json_format.Parse(await request.text(), Payloads())
            except (json_format.ParseError, ValueError):
                return web.Response(status=400, text="body: a JSON object with a payloads array")
            try:
                result = Payloads(payloads=await transform(payloads.payloads))
            except crypto.CryptoError:
                # The UI shows its own "could not decode" for this payload; we say no more.
                return web.Response(status=422, text=crypto.UNREADABLE)
            return web.json_response(text=json_format.MessageToJson(result))

        return handle

    async def login_form(_: web.Request) -> web.Response:
        return web.Response(text=_LOGIN_PAGE, content_type="text/html")

    async def login(request: web.Request) -> web.Response:
        form = await request.post()
        given = str(form.get("token", "")).strip()
        if not hmac.compare_digest(given, token):
            log.warning("codec_refused", reason="bad_login")
            return web.Response(status=401, text="wrong token")
        response = web.Response(text="Signed in. The Web UI can decode payloads in this browser.")
        response.set_cookie(COOKIE, session, httponly=True, samesite="Strict", max_age=8 * 3600)
        return response

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[guard], client_max_size=8 * 1024 * 1024)
    # The UI may prefix the namespace (`/{namespace}/decode`); both forms are served.
    for prefix in ("", "/{namespace}"):
        app.router.add_post(f"{prefix}/encode", endpoint(codec.encode))
        app.router.add_post(f"{prefix}/decode", endpoint(codec.decode))
        app.router.add_route("OPTIONS", f"{prefix}/encode", login_form)
        app.router.add_route("OPTIONS", f"{prefix}/decode", login_form)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_get("/health", health)
    return app


async def start_codec_server(
    codec: crypto.EncryptionCodec, token: str, ui_origins: tuple[str, ...], host: str, port: int
) -> web.AppRunner:
    runner = web.AppRunner(create_app(codec, token, ui_origins), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("codec_server_started", url=f"http://{host}:{port}", origins=json.dumps(list(ui_origins)))
    return runner
