"""The playground against a hostile page: who may connect (Host, Origin), caps on the values a
variant trains with, and messages that must never close the connection (generated)."""

import copy
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient, WebSocketDenialResponse
from test_playground import SMALL, receive

from reglab.playground import server
from reglab.playground.session import CAPS

OWN = "http://127.0.0.1:8765"
generated = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread, as ``reglab playground`` sets (tiny networks: threads only wait on each other)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def connect(base=OWN, headers=None, lines=None):
    """A client of the app served at ``base``, and a WebSocket opened with ``headers``."""
    client = TestClient(server.create_app() if lines is None else server.create_app(log=lines.append), base_url=base)
    return client, client.websocket_connect(base.replace("http", "ws", 1) + "/ws", headers=headers or {})


# -- who may connect -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "http://127.0.0.1:9999",  # another program on this machine
        "https://127.0.0.1:8765",  # another scheme is another origin
        "http://127.0.0.1.evil.example:8765",
        "http://user@127.0.0.1:8765",
        "null",  # a sandboxed frame or a file: page
        "",
    ],
)
def test_a_websocket_from_another_origin_is_refused_with_a_403_and_one_log_line(origin):
    lines = []
    client, ws = connect(headers={"origin": origin}, lines=lines)
    with client, pytest.raises(WebSocketDenialResponse) as refused, ws:
        pass
    assert refused.value.status_code == 403
    assert lines == [f"reglab playground: refused a WebSocket for '/ws': Origin {origin!r} is not this page's (http://127.0.0.1:8765)"]


@pytest.mark.parametrize("host", ["evil.example.com", "evil.example.com:8765", "127.0.0.1:9999", "localhost:80", "", "127.0.0.1:8765@evil.example"])
def test_a_request_for_another_host_is_refused_page_files_and_websocket(host):
    """DNS rebinding: a site whose name resolves to 127.0.0.1 is, to the browser, its own origin;
    only the Host header gives it away."""
    lines = []
    client, ws = connect(headers={"host": host, "origin": f"http://{host}"}, lines=lines)
    with client:
        for path in ("/", "/static/app.js"):
            response = client.get(path, headers={"host": host})
            assert response.status_code == 403 and response.text.startswith("reglab playground: refused: Host"), path
        with pytest.raises(WebSocketDenialResponse) as refused, ws:
            pass
    assert refused.value.status_code == 403
    assert len(lines) == 3 and all(f"Host {host!r} is not this server's (127.0.0.1:8765)" in line for line in lines), lines


@pytest.mark.parametrize("base", [OWN, "http://localhost:8765", "http://[::1]:8765"])
@pytest.mark.parametrize("page", ["http://127.0.0.1:8765", "http://localhost:8765", "http://[::1]:8765", None])
def test_the_pages_own_origin_gets_in_under_every_loopback_name(base, page):
    """A page loaded from 127.0.0.1, localhost or [::1] reaches the server under any of them; a
    client that sends no Origin is not a browser, and gets in (its Host is still checked)."""
    lines = []
    client, ws = connect(base, headers={} if page is None else {"origin": page}, lines=lines)
    with client:
        assert client.get("/").status_code == 200
        assert client.get("/", headers={"host": "localhost:8765"}).status_code == 200
        with ws:
            receive(ws, "hello")
            ws.send_json({"type": "setup", "setup": SMALL})
            receive(ws, "state")
    assert lines == []


@pytest.mark.parametrize(
    "served,host,origin,refused",
    [
        (("192.168.1.5", 8765), "192.168.1.5:8765", "http://192.168.1.5:8765", False),  # --host 0.0.0.0, reached over the network
        (("192.168.1.5", 8765), "localhost:8765", None, True),  # not a loopback address: its own name only
        (("::ffff:127.0.0.1", 8765), "localhost:8765", "http://127.0.0.1:8765", False),  # an IPv4 client of a dual-stack server
        (("127.0.0.1", 80), "127.0.0.1", "http://localhost", False),  # the default port, left out
        (("/tmp/playground.sock", None), "127.0.0.1:8765", None, True),  # a Unix socket: no address to check against
    ],
)
def test_the_served_address_decides_which_hosts_are_its_own(served, host, origin, refused):
    headers = [(b"host", host.encode())] + ([] if origin is None else [(b"origin", origin.encode())])
    scope = {"type": "websocket", "scheme": "ws", "server": served, "headers": headers}
    assert (server.refusal(scope) is not None) == refused


# -- caps on what each variant trains with ---------------------------------------------------------

FIELDS = ("epochs", "batch_size", "learning_rate")
CAPPED = {"epochs": (1, CAPS["epochs"]), "batch_size": (1, CAPS["batch_size"]), "learning_rate": (0, CAPS["learning_rate"])}
BASE = {**SMALL, "model": {"hidden": [4], "activation": "tanh"}, "train": {**SMALL["train"], "seeds": 2}}


def values(field):
    lo, hi = CAPPED[field]
    if field == "learning_rate":
        return st.one_of(st.floats(1e-4, hi), st.floats(hi, 1e300, exclude_min=True), st.sampled_from([hi, 11]))
    return st.one_of(st.integers(lo, hi), st.integers(hi + 1, 10**12), st.sampled_from([hi, hi + 1, 10**9]))


@st.composite
def overridden_setups(draw):
    """A setup whose [train] and whose variants each may set epochs, batch size and learning rate,
    in or past their caps."""
    setup = copy.deepcopy(BASE)
    setup["train"].update({f: draw(values(f)) for f in FIELDS})
    names = draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=CAPS["variants"], unique=True))
    setup["variants"] = [{"name": n, **{f: draw(values(f)) for f in sorted(draw(st.sets(st.sampled_from(FIELDS))))}} for n in names]
    return setup


def effective(setup):
    """Each variant's value of each field, and where it was set: the reference the server's caps
    must agree with (a variant's own value overrides [train])."""
    for i, variant in enumerate(setup["variants"]):
        for f in FIELDS:
            yield (f"variant[{i}].{f}", variant[f]) if f in variant else (f"train.{f}", setup["train"][f]), f


@generated
@given(overridden_setups())
def test_every_cap_holds_on_the_value_a_variant_trains_with(setup):
    over = set()
    for (where, value), f in effective(setup):
        lo, hi = CAPPED[f]
        if value > hi:
            over.add(f"{where}: the playground's cap is {lo} to {hi}, got {float(value) if f == 'learning_rate' else value!r}")
    client, ws = connect()
    with client, ws:
        receive(ws, "hello")
        ws.send_json({"type": "setup", "setup": BASE})
        receive(ws, "state")
        before = receive_export(ws)
        ws.send_json({"type": "setup", "setup": setup})
        if over:
            error = receive(ws, "error")["message"]
            assert error in over, (error, over)
            assert receive_export(ws) == before  # nothing of it was taken
        else:
            receive(ws, "state")
            names = [v["name"] for v in setup["variants"]]
            header = None
            while header is None or [v["name"] for v in header["variants"]] != names:  # a frame of before may come first
                header, _ = receive(ws, "frame")
            epochs = [v[0][1] for v in effective(setup) if v[1] == "epochs"]
            assert [v["epochs"] for v in header["variants"]] == epochs


def receive_export(ws):
    ws.send_json({"type": "export"})
    return receive(ws, "export")


# -- messages that once closed the connection ------------------------------------------------------


def variant_epochs(setup):
    setup["variants"][0]["epochs"] = 10**9


def data_noise(setup):
    setup["data"]["noise"] = 1e308


@pytest.mark.parametrize(
    "message,expected",
    [
        ({"type": "setup", "change": variant_epochs}, "variant[0].epochs: the playground's cap is 1 to 5000, got 1000000000"),
        ({"type": "setup", "change": data_noise}, "playground: data.dataset: 'moons' with noise=1e+308, random_state=3 gives"),
        ({"type": "upload", "name": "a.csv", "text": "a,b,label\n\ud800,1,0\n"}, "a.csv: not UTF-8 text (character 10 is a lone surrogate); save the file as UTF-8"),
        ({"type": "upload", "name": "a" * 5000 + ".csv", "text": "a,b,label\n1,2,0\n"}, "upload name: the playground takes names up to 200 characters, got 5004"),
        ({"type": "setup", "setup": {**SMALL, "train": {**SMALL["train"], "learning_rate": math.nan}}}, "message: not understood (ValueError: NaN is not a JSON value)"),
    ],
)
def test_a_message_that_once_closed_the_connection_is_one_error_line(message, expected):
    message = dict(message)
    client, ws = connect()
    with client, ws:
        receive(ws, "hello")
        ws.send_json({"type": "setup", "setup": SMALL})
        receive(ws, "state")
        if "change" in message:
            setup = copy.deepcopy(SMALL)
            message.pop("change")(setup)
            message["setup"] = setup
        ws.send_text(json.dumps(message))
        error = receive(ws, "error")["message"]
        assert error.startswith(expected) and "\n" not in error, error
        ws.send_json({"type": "step"})  # the connection goes on, with the setup before
        assert epochs_after_a_step(ws) == [1, 1, 1]


def epochs_after_a_step(ws, names=("baseline", "dropout", "stops")):
    """The variants' epochs in the first frame of ``names`` past epoch 0 (frames drawn before may
    still arrive)."""
    while True:
        header, _ = receive(ws, "frame")
        if [v["name"] for v in header["variants"]] == list(names) and header["variants"][0]["epoch"] >= 1:
            return [v["epoch"] for v in header["variants"]]


# -- generated messages ------------------------------------------------------------------------------

TYPES = ["setup", "play", "pause", "step", "reset", "upload", "export"]
NASTY_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["NaN", "Infinity", "-1e309", "1e308", "", "\ud800", "a,b,label\n1,2,0\n3,4,1\n"]),
    st.text(max_size=10).map(lambda t: t + "\udfff"),
)
NASTY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.sampled_from([0, -1, 10**9, 10**300, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),  # NaN and Infinity go out as JSON's non-standard constants
    st.sampled_from([1e308, -1e308, 5e-324, 1e-320]),
    NASTY_TEXT,
    st.lists(st.integers(-5, 200), max_size=6),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
)
# Values a page might well send, so that generated setups are often taken (and then trained).
PLAUSIBLE = st.one_of(
    st.integers(1, 6000),
    st.floats(0, 1.5),
    st.sampled_from(["relu", "tanh", "sgd", "adam", "moons", "circles", "xor", "seed-dropout-regression", "upload", [3, 2], {"patience": 2}]),
)
HUGE = st.sampled_from([10**9, 10**12, 2**63, 1e308, -(10**9)])  # past every cap
# Where a change lands in a setup: every part the page sends, and a variant's own settings.
PATHS = [
    ("data",), ("data", "dataset"), ("data", "noise"), ("data", "validation"), ("data", "data_seed"), ("data", "extra"),
    ("model",), ("model", "hidden"), ("model", "hidden", 0), ("model", "activation"),
    ("train",), *[("train", f) for f in ("optimizer", "learning_rate", "batch_size", "epochs", "seeds", "momentum")],
    ("variants",), ("variants", 0), ("variants", 1, "name"), ("variants", 1, "dropout"), ("variants", 2, "early_stopping"),
    ("variants", 2, "early_stopping", "patience"), *[("variants", 0, f) for f in ("epochs", "batch_size", "learning_rate", "optimizer", "momentum", "l2")],
]


def changed(setup, path, value):
    node = setup
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


@st.composite
def setups(draw):
    setup = copy.deepcopy(BASE)
    for path, value in draw(st.lists(st.tuples(st.sampled_from(PATHS), PLAUSIBLE | HUGE | NASTY), max_size=3)):
        try:
            changed(setup, path, value)
        except (TypeError, IndexError, KeyError):  # an earlier change took the part away
            pass
    return setup


def csv(rows):
    return "x1,x2,label\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows)


rows = st.lists(st.tuples(st.floats(-5, 5), st.floats(-5, 5), st.integers(0, 1)), max_size=30).map(csv)
upload = lambda name, text: {"type": "upload", "name": name, "text": text}  # noqa: E731
uploads = st.one_of(
    st.builds(upload, st.just("mine.csv"), rows),
    st.builds(upload, st.just("mine.csv"), st.tuples(rows, st.sampled_from("\ud800\udfff")).map("".join)),  # a lone surrogate
    st.builds(upload, st.integers(150, 6000).map(lambda n: "a" * n + ".csv"), rows),  # a long name
    st.builds(upload, NASTY_TEXT | NASTY, rows | NASTY_TEXT | NASTY),
)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10), lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=10)
setup = lambda s: {"type": "setup", "setup": s}  # noqa: E731
controls = st.sampled_from([{"type": t} for t in TYPES if t not in ("setup", "upload")])
messages = st.one_of(
    st.builds(setup, setups()),
    st.builds(setup, overridden_setups()),  # a variant's own epochs, batch size, learning rate, often past a cap
    st.builds(setup, NASTY),
    controls,
    controls,  # as often as a setup: a setup taken is then trained
    uploads,
    st.builds(lambda t, extra: {"type": t, **extra}, st.sampled_from(TYPES) | NASTY, st.dictionaries(st.sampled_from(["setup", "name", "text", "type"]), NASTY, max_size=2)),
    json_values,
    st.text(max_size=60),  # mostly not JSON at all
    st.binary(max_size=60),
)


def send(ws, message):
    if isinstance(message, bytes):
        ws.send_bytes(message)
    elif isinstance(message, str):
        ws.send_text(message)
    else:
        ws.send_text(json.dumps(message))


def replies(ws, sentinel):
    """The text replies until the sentinel's refusal (messages are handled in order); frames are
    skipped, a closed connection fails."""
    out = []
    while True:
        message = ws.receive()
        if message.get("bytes") is not None:
            continue
        assert message.get("text") is not None, f"connection closed: {message}"
        reply = json.loads(message["text"])
        if reply["type"] == "error" and reply["message"].endswith(f"got {sentinel!r}"):
            return out
        out.append(reply)


@generated
@given(st.booleans(), st.lists(messages, min_size=1, max_size=4))
def test_no_message_closes_the_connection(set_up_first, sent):
    """Each generated message gets an error line or its normal reply, never a closed connection,
    and a good setup afterwards still trains."""
    client, ws = connect()
    with client, ws:
        receive(ws, "hello")
        if set_up_first:
            ws.send_json({"type": "setup", "setup": SMALL})
            receive(ws, "state")
        for i, message in enumerate(sent):
            send(ws, message)
            sentinel = f"sentinel {i}"
            ws.send_json({"type": sentinel})
            got = replies(ws, sentinel)
            assert {r["type"] for r in got} <= {"error", "state", "playing", "export"}, got
            errors = [r["message"] for r in got if r["type"] == "error"]
            assert len(errors) <= 1 and not (errors and any(r["type"] in ("state", "export") for r in got)), got
            assert all("\n" not in e and len(e) <= 500 for e in errors), errors
        final = {**SMALL, "variants": [{**v, "name": f"final {v['name']}"} for v in SMALL["variants"]]}
        ws.send_json({"type": "setup", "setup": final})
        assert receive(ws, "state")["setup"] == final
        for message in ({"type": "pause"}, {"type": "reset"}, {"type": "sentinel end"}):  # no frame of before comes after
            ws.send_json(message)
        assert [r["type"] for r in replies(ws, "sentinel end")] == ["playing", "playing"]
        ws.send_json({"type": "step"})
        assert epochs_after_a_step(ws, [v["name"] for v in final["variants"]]) == [1, 1, 1]
