"""The web chat page at /chat/ in a real browser: headless Debian chromium, driven by
playwright-core (tests/node/browser_chat.js), logs in as alice through Converse's form, opens
the chat with bob from the roster and sends a message; bob, a slixmpp client on TCP, gets it
and answers; the page shows the answer. A screenshot of the page is kept in
<build>/artifacts/. The page must load nothing from another origin."""
import asyncio
import json
import os
import secrets
import shutil
import subprocess
import time
from urllib.parse import urlsplit

import pytest

from conftest import (MAGPIED, befriend, free_ports, jid, next_of, run, settle, slix_close,
                      slix_login)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "../.."))
NODE_DIR = os.path.join(ROOT, "tests/node")
DRIVER = os.path.join(NODE_DIR, "browser_chat.js")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
BUILD = os.path.dirname(os.path.abspath(MAGPIED))
WEB_ROOT = os.path.join(BUILD, "web")  # MAGPIE_WEB_ROOT of this build: http.web_root's default
ARTIFACTS = os.path.join(BUILD, "artifacts")


def _ensure_tools():
    """Chromium and playwright-core, installed the way `make test-deps` does when missing
    (a developer running this file alone); skip only when chromium cannot be had."""
    if not os.access(CHROMIUM, os.X_OK):
        subprocess.run([os.path.join(ROOT, "scripts/install-deps.sh"), "chromium"],
                       check=False, timeout=900)
        if not os.access(CHROMIUM, os.X_OK):
            pytest.skip(f"{CHROMIUM} is missing and could not be installed (needs root)")
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules/playwright-core")):
        subprocess.run([os.path.join(ROOT, "scripts/node-deps.sh"), NODE_DIR], check=True,
                       timeout=600)
    index = os.path.join(WEB_ROOT, "chat/index.html")
    assert os.path.isfile(index), (
        f"{index} missing: the build lays out the web page (CMake target `web`, "
        "scripts/fetch-web.sh; needs node and npm)")
    assert os.path.isfile(os.path.join(WEB_ROOT, "chat/dist/converse.min.js"))


def _wait_http(srv, port, timeout=20):
    deadline = time.monotonic() + timeout
    while not srv._accepts(port):
        assert time.monotonic() < deadline, f"nothing accepts on the HTTP port {port}"
        time.sleep(0.05)


async def _browser_dialogue(srv, page_url, screenshot):
    """alice in the browser writes to bob; bob (slixmpp) answers. Returns the driver's report."""
    a = await slix_login(srv, "alice")
    b = await slix_login(srv, "bob")
    await befriend(a, b, "alice", "bob")
    await slix_close(a)  # from now on alice is the browser
    b.send_presence()  # available: a message to bob's bare JID reaches this session
    await settle(b)

    hello = "hello from the browser " + secrets.token_hex(4)
    reply = "bob answers " + secrets.token_hex(4)
    opts = {"url": page_url, "jid": jid("alice"), "password": srv.users["alice"],
            "peer": jid("bob"), "message": hello, "reply": reply, "screenshot": screenshot,
            "chromium": CHROMIUM, "timeout_ms": 45000, "insecure": True}
    proc = await asyncio.create_subprocess_exec(
        "node", DRIVER, json.dumps(opts), cwd=NODE_DIR,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        got = asyncio.ensure_future(next_of(
            b.messages, lambda m: m["body"] == hello, "alice's message from the browser",
            timeout=150))
        exited = asyncio.ensure_future(proc.wait())
        await asyncio.wait([got, exited], return_when=asyncio.FIRST_COMPLETED)
        received = got.done()
        if received:
            msg = got.result()
            assert msg["from"].bare == jid("alice"), msg
            assert msg["type"] == "chat", msg
            b.send_message(mto=msg["from"], mbody=reply, mtype="chat")
        else:  # the browser gave up first: its report says where
            got.cancel()
        out, err = await asyncio.wait_for(proc.communicate(), 150)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await slix_close(b)
    lines = out.decode("utf-8", "replace").strip().splitlines()
    assert lines, f"browser_chat.js printed no report:\n{err.decode('utf-8', 'replace')}"
    report = json.loads(lines[-1])
    report["stderr"] = err.decode("utf-8", "replace")
    report["bob"] = "bob received the message" if received else "bob did not receive it"
    return report


def _check_report(report, origin, screenshot):
    print(f"screenshot: {screenshot}")
    assert report["ok"], (f"browser step '{report['step']}' failed ({report['bob']}): "
                          f"{report.get('error')}\n"
                          f"console errors: {report['console_errors']}\n"
                          f"page errors: {report['page_errors']}\n"
                          f"driver stderr: {report['stderr'][-3000:]}\n"
                          f"screenshot: {screenshot}")
    # Everything the page loaded came from the server that served it.
    foreign = [u for u in report["requests"]
               if not u.startswith(origin + "/") and not u.startswith(("data:", "blob:"))]
    assert not foreign, f"the page loaded from other origins: {foreign}"
    host = urlsplit(origin).netloc
    assert any(u.startswith(f"{origin}/chat/dist/converse.min.js") for u in report["requests"])
    blocked = [m for m in report["console_errors"] if "Content Security Policy" in m]
    assert not blocked, f"the page's own CSP blocked: {blocked}"
    with open(screenshot, "rb") as f:
        png = f.read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "the screenshot is not a PNG"
    assert len(png) > 20 * 1024, f"the screenshot is only {len(png)} bytes: a blank page?"
    return host


def test_browser_chat_over_websocket(make_server):
    """The page's defaults over HTTPS (the self-signed certificate of the first start):
    WebSocket (wss:) on the page's own origin, no BOSH needed."""
    _ensure_tools()
    srv = make_server(users={"alice": None, "bob": None})
    _wait_http(srv, srv.https_port)
    os.makedirs(ARTIFACTS, exist_ok=True)
    screenshot = os.path.join(ARTIFACTS, "browser_chat.png")
    origin = f"https://127.0.0.1:{srv.https_port}"
    report = run(_browser_dialogue(srv, origin + "/chat/", screenshot), timeout=300)
    host = _check_report(report, origin, screenshot)
    assert f"wss://{host}/xmpp-websocket" in report["websockets"], report["websockets"]
    assert not [u for u in report["requests"] if "/http-bind" in u], \
        "BOSH was used although the WebSocket endpoint works"


def test_browser_chat_falls_back_to_bosh(make_server, tmp_path):
    """Plain HTTP behind a TLS-terminating proxy (http.consider_secure), and a deployment's
    config.js that names a WebSocket endpoint refusing connections: Converse switches to BOSH
    on the page's origin and the dialogue works all the same. The web root is the build's page
    with this config.js beside it (http.web_root)."""
    _ensure_tools()
    root = tmp_path / "web"
    chat = root / "chat"
    chat.mkdir(parents=True)
    for name in ("index.html", "magpie-chat.js"):
        shutil.copy(os.path.join(WEB_ROOT, "chat", name), chat / name)
    shutil.copytree(os.path.join(WEB_ROOT, "chat/dist"), chat / "dist")
    srv = make_server(users={"alice": None, "bob": None},
                      config={"http": {"web_root": str(root), "consider_secure": True}},
                      start=False)
    # A port nothing listens on: the WebSocket connection fails at once.
    dead = free_ports(1)[0]
    (chat / "config.js").write_text(
        "window.magpie_chat = { websocket_url: 'ws://127.0.0.1:%d/xmpp-websocket' };\n" % dead)
    srv.start()
    _wait_http(srv, srv.http_port)
    os.makedirs(ARTIFACTS, exist_ok=True)
    screenshot = os.path.join(ARTIFACTS, "browser_chat_bosh.png")
    origin = f"http://127.0.0.1:{srv.http_port}"
    report = run(_browser_dialogue(srv, origin + "/chat/", screenshot), timeout=300)
    # The refused WebSocket is to another port of this host: allowed by config.js, not loaded
    # by the page itself, and it never shows up as an HTTP request.
    _check_report(report, origin, screenshot)
    assert any(u == f"{origin}/http-bind" for u in report["requests"]), report["requests"]
    shutil.rmtree(root, ignore_errors=True)
