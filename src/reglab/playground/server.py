"""The playground's web server: the page, its files, and one WebSocket per page.

Controls come up as JSON text (``setup``, ``play``, ``pause``, ``step``, ``reset``, ``upload``,
``export``; the page's Regenerate sends a setup with the next data seed); frames go down as binary messages: a 4-byte little-endian length, that
many bytes of JSON header, padding to a multiple of 4, then the payload the header points into
(``[offset, length, dtype]``). Training runs on a thread of its own, never on the event loop, and
a frame is only drawn when the previous one has been sent, so a slow browser gets fewer frames,
never a queue of them. Each connection has its own session and temporary folder, removed when
the page goes away.

Only the page's own origin gets in: a request whose ``Host`` is not this server's address (a
DNS-rebinding name) and a WebSocket whose ``Origin`` is another site's are refused with a 403 and
one line in the log, before anything else sees them (:class:`OwnOriginOnly`). Whatever goes wrong
with one message is one ``error`` line to the page, and the connection stays open.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import json
import logging
import shutil
import struct
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import FileResponse, PlainTextResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..errors import UserError
from .session import CAPS, DATASETS, DEFAULT_SETUP, GENERATED, Session, technique_controls

STATIC = Path(str(resources.files("reglab.playground").joinpath("static")))
LOOPBACK = ("127.0.0.1", "localhost", "::1")  # the names of this machine a page may be served under
ERROR_CHARS = 500  # an error line to the page is cut here (it may quote what the page sent)


def encode_frame(header: dict, payload: bytes) -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    pad = (-(4 + len(head))) % 4
    return struct.pack("<I", len(head)) + head + b" " * pad + payload


class Connection:
    """One page: its session, the training thread, and what waits to be sent.

    Two locks: ``lock`` guards the session (held by the training thread for an epoch and a frame,
    or by a control applying a setup), ``flags`` the small shared state (play, steps pending, the
    newest frame), which the event loop must never wait an epoch for.
    """

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.workdir = Path(tempfile.mkdtemp(prefix="reglab-playground-"))
        self.session = Session(self.workdir)
        self.lock = threading.Lock()
        self.flags = threading.Lock()
        self.wake = threading.Event()
        self.playing = False
        self.steps = 0
        self.closed = False
        self.outbox: list[str] = []  # text messages, sent before the next frame
        self.frame: bytes | None = None  # the newest frame not yet sent
        self.frame_taken = True  # the training thread draws a new frame only once the last one left
        self.ready = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        self.sent_times: list[float] = []

    # -- the training thread --------------------------------------------------------------------

    def train(self) -> None:
        """Train while playing (or steps are asked for), drawing a frame whenever the last one has
        left; on closing, remove the session's folder. An error stops play and says one line."""
        try:
            while not self.closed:
                self.wake.wait(timeout=0.5)
                with self.lock:
                    if self.closed:
                        break
                    with self.flags:
                        work = self.session.plan is not None and (self.playing or self.steps)
                        if not work:
                            self.wake.clear()
                    if not work:
                        continue
                    try:
                        self._epoch()
                    except Exception as err:  # noqa: BLE001  (an internal error: the page hears of it, the server goes on)
                        with self.flags:
                            self.playing, self.steps = False, 0
                        self.error(f"training stopped: {type(err).__name__}: {err}")
                        self.say({"type": "playing", "playing": False})
        finally:
            with self.lock:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def _epoch(self) -> None:
        """One epoch of every variant, and a frame if the page is ready for one (session locked)."""
        if not self.session.done:
            self.session.step()
        with self.flags:
            self.steps = max(0, self.steps - 1)
            if self.session.done:
                self.playing = False
            draw = self.frame_taken or not self.playing
            if not (self.playing or self.steps):
                self.wake.clear()  # under the flags: a Play arriving now sets it again after this
        if draw:
            self._draw()

    def _draw(self) -> None:
        """Draw a frame of where the session stands (the session locked)."""
        header, payload = self.session.frame()
        with self.flags:
            header.update(playing=self.playing, fps=self.fps())
            self.frame, self.frame_taken = encode_frame(header, payload), False
        self._notify()

    def _notify(self) -> None:
        """Wake the sender, from any thread (a loop already closed: the page has gone)."""
        try:
            self.loop.call_soon_threadsafe(self.ready.set)
        except RuntimeError:
            self.closed = True

    def fps(self) -> float:
        times = self.sent_times[-20:]
        return 0.0 if len(times) < 2 else round((len(times) - 1) / max(times[-1] - times[0], 1e-9), 1)

    # -- the event loop ---------------------------------------------------------------------------

    def say(self, message: dict) -> None:
        """Queue a text message (from the event loop or the training thread)."""
        with self.flags:
            self.outbox.append(json.dumps(message))
        self._notify()

    def error(self, text: str) -> None:
        """Say what went wrong, in one line (line breaks in what it quotes become spaces)."""
        line = " ".join(text.splitlines())
        self.say({"type": "error", "message": line if len(line) <= ERROR_CHARS else line[: ERROR_CHARS - 1] + "\u2026"})

    async def send(self) -> None:
        while True:
            await self.ready.wait()
            self.ready.clear()
            with self.flags:
                texts, self.outbox = self.outbox, []
                frame, self.frame = self.frame, None
            for text in texts:
                await self.ws.send_text(text)
            if frame is not None:
                await self.ws.send_bytes(frame)
                with self.flags:
                    self.sent_times = [*self.sent_times[-40:], time.perf_counter()]
                    self.frame_taken = True
                self.wake.set()

    async def receive(self) -> None:
        """Handle the page's messages in turn. Whatever goes wrong with one, a mistake in it or a
        bug it finds, is one error line to the page; the connection stays open for the next."""
        while True:
            raw = await self.ws.receive()
            if raw["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(raw.get("code", 1000))
            try:
                await self.handle(parse_message(raw))
            except UserError as err:
                self.error(str(err))
            except (ValueError, KeyError, TypeError) as err:  # a malformed message: not JSON, a part missing or of the wrong kind
                self.error(f"message: not understood ({type(err).__name__}: {err})")
            except Exception as err:  # noqa: BLE001  (a bug a message found: the page hears of it, the connection goes on)
                self.error(f"message: failed ({type(err).__name__}: {err})")

    async def handle(self, message: dict) -> None:
        kind = message.get("type")
        if kind == "setup":
            await self.apply(message["setup"])
            return
        if kind not in ("play", "pause", "step", "reset", "upload", "export"):
            raise UserError(f"message type: must be one of setup, play, pause, step, reset, upload, export, got {kind!r}")
        if self.session.setup is None and kind != "upload":
            raise UserError(f"{kind}: send a setup first")
        if kind in ("play", "pause", "step"):
            with self.flags:
                self.playing = kind == "play" and not self.session.done
                self.steps += kind == "step"
                playing = self.playing
            self.wake.set()
            self.say({"type": "playing", "playing": playing})
        elif kind == "reset":
            await asyncio.to_thread(self._locked, self._reset)
        elif kind == "upload":
            before = self.session.upload, self.session.upload_version
            try:
                await asyncio.to_thread(self._locked, lambda: self.session.set_upload(str(message["name"]), str(message["text"])))
                setup = copy.deepcopy(self.session.setup or DEFAULT_SETUP)
                setup["data"]["dataset"] = "upload"
                await self.apply(setup)
            except Exception:
                self.session.upload, self.session.upload_version = before  # a refused file changes nothing
                raise
        else:
            self.say({"type": "export", **self.session.export()})

    def _locked(self, fn):
        with self.lock:
            return fn()

    def _reset(self) -> None:
        with self.flags:
            self.playing, self.steps = False, 0
        self.session.reset()
        self.say({"type": "playing", "playing": False})
        self._draw()

    async def apply(self, setup) -> None:
        if not isinstance(setup, dict):
            raise UserError(f"setup: must be a JSON object, got {type(setup).__name__}")

        def work():
            try:
                restarted = self.session.apply(setup)
            except (KeyError, TypeError, AttributeError) as err:  # a setup without a part the page always sends
                raise UserError(f"setup: not understood ({type(err).__name__}: {err})") from None
            with self.flags:
                if self.session.done:
                    self.playing = False
                playing = self.playing
            self.say({"type": "state", "setup": self.session.setup, "restarted": restarted, "points": self.session.points(), "playing": playing})
            self._draw()

        await asyncio.to_thread(self._locked, work)

    async def run(self) -> None:
        thread = threading.Thread(target=self.train, name="reglab-playground-training", daemon=True)
        thread.start()  # it removes the session's folder when it ends
        sender = None
        try:
            await self.ws.accept()
            self.say({"type": "hello", "datasets": [{"name": k, "label": v, "generated": k in GENERATED} for k, v in DATASETS.items()], "techniques": technique_controls(), "caps": CAPS, "defaults": DEFAULT_SETUP})
            sender = asyncio.create_task(self.send())
            await self.receive()
        except WebSocketDisconnect:
            pass
        finally:
            # Never waits: the training thread sees `closed` at its next turn, cleans up and ends.
            if sender is not None:
                sender.cancel()
            self.closed = True
            self.wake.set()


def parse_message(raw: dict) -> dict:
    """A control message: a JSON object, in strict JSON (NaN and Infinity, which the page never
    sends, are refused here rather than met deep in a setup or echoed back as invalid JSON)."""
    text = raw.get("text")
    if text is None:
        raise UserError("message: must be JSON text, got a binary message")
    message = json.loads(text, parse_constant=_not_json)
    if not isinstance(message, dict):
        raise UserError(f"message: must be a JSON object with a type, got {text[:80]!r}")
    return message


def _not_json(constant: str):
    raise ValueError(f"{constant} is not a JSON value")


# -- who may connect --------------------------------------------------------------------------------


def refusal(scope) -> str | None:
    """Why a request may not come in, or None: its ``Host`` must name the address it reached (this
    machine's loopback names, if it is a loopback address) and that port, so that no other site's
    name that resolves here (DNS rebinding) gets in; a WebSocket's ``Origin``, if it has one, must be
    the page's own, so that no other site's page drives this one. A client that sends no Origin is
    not a browser (browsers always send one with a WebSocket); it gets what a script on this
    machine could do anyway."""
    if not scope.get("server") or scope["server"][1] is None:  # a Unix socket: no address to check against
        return "the server's address is unknown"
    name, port = scope["server"]
    name = name.lower()
    try:
        ip = ipaddress.ip_address(name)
        ip = getattr(ip, "ipv4_mapped", None) or ip  # an IPv4 client of a dual-stack server
        name, loopback = str(ip), ip.is_loopback
    except ValueError:  # a name: what a test client reports
        loopback = name in LOOPBACK
    names = {name, *LOOPBACK} if loopback else {name}
    secure = scope.get("scheme") in ("https", "wss")
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
    host = headers.get("host", "")
    if _address(f"//{host}", secure) not in {(n, port) for n in names}:
        return f"Host {host[:100]!r} is not this server's ({_netloc(name, port)})"
    origin = headers.get("origin")
    if scope["type"] == "websocket" and origin is not None:
        if not origin.lower().startswith("https://" if secure else "http://") or _address(origin, secure) not in {(n, port) for n in names}:
            return f"Origin {origin[:100]!r} is not this page's ({'https' if secure else 'http'}://{_netloc(name, port)})"
    return None


def _address(url: str, secure: bool) -> tuple[str, int] | None:
    """``(host, port)`` of ``//host[:port]`` or ``scheme://host[:port]``, the port the scheme's if
    not given; None for anything more (a path, a user) or less."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if secure else 80)
    except ValueError:  # a port that is not a number
        return None
    if not parts.hostname or parts.path or parts.query or parts.fragment or "@" in parts.netloc:
        return None
    return parts.hostname, port


def _netloc(name: str, port: int) -> str:
    return f"[{name}]:{port}" if ":" in name else f"{name}:{port}"


class OwnOriginOnly:
    """ASGI middleware: a request :func:`refusal` gives a reason for gets a 403 (a WebSocket's
    handshake too) and one line in the log, and reaches nothing else."""

    def __init__(self, app, log) -> None:
        self.app, self.log = app, log

    async def __call__(self, scope, receive, send) -> None:
        why = refusal(scope) if scope["type"] in ("http", "websocket") else None
        if why is None:
            return await self.app(scope, receive, send)
        kind = "a WebSocket" if scope["type"] == "websocket" else f"an HTTP {scope.get('method', '')} request"
        self.log(f"reglab playground: refused {kind} for {scope.get('path', '')[:100]!r}: {why}")
        response = PlainTextResponse(f"reglab playground: refused: {why}\n", status_code=403)
        if scope["type"] == "http":
            await response(scope, receive, send)
        elif "websocket.http.response" in scope.get("extensions", {}):
            await WebSocket(scope, receive, send).send_denial_response(response)
        else:
            await WebSocket(scope, receive, send).close(code=1008)  # before the handshake: the server answers 403


async def index(request):
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})


async def socket(ws: WebSocket) -> None:
    await Connection(ws).run()


def create_app(log=None) -> Starlette:
    """The playground's app; ``log`` takes one line per refused request (default: a warning on the
    ``reglab.playground`` logger)."""
    log = log or logging.getLogger("reglab.playground").warning
    return Starlette(
        routes=[Route("/", index), Mount("/static", StaticFiles(directory=STATIC), name="static"), WebSocketRoute("/ws", socket)],
        middleware=[Middleware(OwnOriginOnly, log=log)],
    )


def serve(host: str = "127.0.0.1", port: int = 8765, open_browser: bool = True, log=print) -> None:
    """Run the server until interrupted; open the page in a browser unless told not to."""
    import uvicorn

    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
    if host in ("0.0.0.0", "::"):
        log(f"reglab playground: warning: listening on every network interface ({host}); anyone who can reach this machine can use it")
    log(f"reglab playground: {url} (Ctrl-C stops it)")
    if open_browser:
        import webbrowser

        threading.Timer(0.8, lambda: webbrowser.open(url)).start()
    uvicorn.run(create_app(log), host=host, port=port, log_level="warning", ws_max_size=2 * CAPS["upload_bytes"] + 65536)
