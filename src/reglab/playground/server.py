"""The playground's web server: the page, its files, and one WebSocket per page.

Controls come up as JSON text (``setup``, ``play``, ``pause``, ``step``, ``reset``, ``regenerate``,
``upload``, ``export``); frames go down as binary messages: a 4-byte little-endian length, that
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
    """One page: its session, the training thread, and what waits to be sent."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.workdir = Path(tempfile.mkdtemp(prefix="reglab-playground-"))
        self.session = Session(self.workdir)
        self.lock = threading.Lock()  # the session: the training thread or a control, one at a time
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
        while True:
            self.wake.wait(timeout=0.5)
            with self.lock:
                if self.closed:
                    return
                if self.session.plan is None or not (self.playing or self.steps):
                    self.wake.clear()
                    continue
                if not self.session.done:
                    self.session.step()
                if self.steps:
                    self.steps -= 1
                if self.session.done:
                    self.playing = False
                if self.frame_taken or not self.playing:
                    self._draw()
            if not (self.playing or self.steps):
                self.wake.clear()

    def _draw(self) -> None:
        """Draw a frame of where the session stands (the lock held)."""
        header, payload = self.session.frame()
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
        self.outbox.append(json.dumps(message))
        self._notify()

    async def send(self) -> None:
        while True:
            await self.ready.wait()
            self.ready.clear()
            while self.outbox:
                await self.ws.send_text(self.outbox.pop(0))
            frame, self.frame = self.frame, None
            if frame is not None:
                await self.ws.send_bytes(frame)
                self.sent_times = [*self.sent_times[-40:], time.perf_counter()]
                self.frame_taken = True
                self.wake.set()

    async def receive(self) -> None:
        while True:
            text = await self.ws.receive_text()
            try:
                message = json.loads(text)
                await self.handle(message)
            except UserError as err:
                self.say({"type": "error", "message": str(err)})
            except (ValueError, KeyError, TypeError) as err:  # a malformed message
                self.say({"type": "error", "message": f"message: not understood ({type(err).__name__}: {err})"})

    async def handle(self, message: dict) -> None:
        kind = message.get("type")
        if kind == "setup":
            await self.apply(message["setup"])
        elif kind in ("play", "pause"):
            self.playing = kind == "play" and not self.session.done
            self.wake.set()
            self.say({"type": "playing", "playing": self.playing})
        elif kind == "step":
            self.playing = False
            self.steps += 1
            self.wake.set()
            self.say({"type": "playing", "playing": False})
        elif kind == "reset":
            await asyncio.to_thread(self._locked, self._reset)
        elif kind == "regenerate":
            setup = copy.deepcopy(self.session.setup)
            if setup["data"]["dataset"] not in GENERATED:
                raise UserError(f"data.dataset: {setup['data']['dataset']!r} is fixed data; regenerate works on a generated dataset ({', '.join(GENERATED)})")
            setup["data"]["data_seed"] += 1
            await self.apply(setup)
        elif kind == "upload":
            before = self.session.upload
            try:
                await asyncio.to_thread(self._locked, lambda: self.session.set_upload(str(message["name"]), str(message["text"])))
                setup = copy.deepcopy(self.session.setup or DEFAULT_SETUP)
                setup["data"]["dataset"] = "upload"
                await self.apply(setup)
            except UserError:
                self.session.upload = before  # a refused file changes nothing
                raise
        elif kind == "export":
            self.say({"type": "export", **self.session.export()})
        else:
            raise UserError(f"message type: must be one of setup, play, pause, step, reset, regenerate, upload, export, got {kind!r}")

    def _locked(self, fn):
        with self.lock:
            return fn()

    def _reset(self) -> None:
        self.playing, self.steps = False, 0
        self.session.reset()
        self.say({"type": "playing", "playing": False})
        self._draw()

    async def apply(self, setup: dict) -> None:
        def work():
            restarted = self.session.apply(setup)
            if self.session.done:
                self.playing = False
            self.say({"type": "state", "setup": self.session.setup, "restarted": restarted, "points": self.session.points(), "playing": self.playing})
            self._draw()

        await asyncio.to_thread(self._locked, work)

    async def run(self) -> None:
        await self.ws.accept()
        thread = threading.Thread(target=self.train, name="reglab-playground-training", daemon=True)
        thread.start()
        self.say({"type": "hello", "datasets": [{"name": k, "label": v, "generated": k in GENERATED} for k, v in DATASETS.items()], "techniques": technique_controls(), "caps": CAPS, "defaults": DEFAULT_SETUP})
        sender = asyncio.create_task(self.send())
        try:
            await self.receive()
        except WebSocketDisconnect:
            pass
        finally:
            # Synchronously, so that cleanup happens even when the server is shutting down and
            # cancels this task: the thread sees `closed` at its next turn and ends by itself.
            sender.cancel()
            with self.lock:
                self.closed = True
            self.wake.set()
            shutil.rmtree(self.workdir, ignore_errors=True)


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
