"""reglab playground: watch regularization work, live, over many seeds, in the browser.

``reglab playground`` serves one page (everything from the package: no CDN) and one WebSocket per
page. :mod:`.session` holds a page's state and trains it through the engine's stepping API;
:mod:`.server` is the Starlette app that carries controls up and frames down. Needs the
``playground`` extra (Starlette, uvicorn).
"""
