"""The playground's web server: the page, its files, and one WebSocket per page.

Controls come up as JSON text (``setup``, ``play``, ``pause``, ``step``, ``reset``, ``upload``,
``export``; the page's Regenerate sends a setup with the next data seed); frames go down as binary messages: a 4-byte little-endian length, that
many bytes of JSON header, padding to a multiple of 4, then the payload the header points into
(``[offset, length, dtype]``). Training runs on a thread of its own, never on the event loop, and
a frame is only drawn when the previous one has been sent, so a slow browser gets fewer frames,
never a queue of them. Each connection has its own session and temporary folder, removed when
the page goes away.
"""

from __future__ import annotations

import asyncio
import copy
import json
import shutil
import struct
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import FileResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..errors import UserError
from .session import CAPS, DATASETS, DEFAULT_SETUP, GENERATED, Session, technique_controls

STATIC = Path(str(resources.files("reglab.playground").joinpath("static")))


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
                        self.say({"type": "error", "message": f"training stopped: {type(err).__name__}: {err}"})
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
        while True:
            raw = await self.ws.receive()
            if raw["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(raw.get("code", 1000))
            text = raw.get("text")
            try:
                if text is None:
                    raise UserError("message: must be JSON text, got a binary message")
                message = json.loads(text)
                if not isinstance(message, dict):
                    raise UserError(f"message: must be a JSON object with a type, got {text[:80]!r}")
                await self.handle(message)
            except UserError as err:
                self.say({"type": "error", "message": str(err)})
            except (json.JSONDecodeError, KeyError) as err:  # a malformed message
                self.say({"type": "error", "message": f"message: not understood ({type(err).__name__}: {err})"})

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
            except UserError:
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


async def index(request):
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})


async def socket(ws: WebSocket) -> None:
    await Connection(ws).run()


def create_app() -> Starlette:
    return Starlette(routes=[Route("/", index), Mount("/static", StaticFiles(directory=STATIC), name="static"), WebSocketRoute("/ws", socket)])


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
    uvicorn.run(create_app(), host=host, port=port, log_level="warning", ws_max_size=2 * CAPS["upload_bytes"] + 65536)
