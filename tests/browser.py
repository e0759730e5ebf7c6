#!/usr/bin/env python3
"""browser.py - the web console in a real browser: headless Chromium driven
over WebDriver (chromedriver; Python's standard library only, no Selenium).

Run by tests/browser.sh, which starts the fake Magento and the daemon and
fills the store; it passes what it made in the environment:

  M2W_URL        the daemon's base URL (http://127.0.0.1:PORT)
  M2W_USER, M2W_PASSWORD   an operator's login
  QCTL, STORE    qctl and the store, to check what the page did
  ARTEFACTS      where the screenshots go (PNG, one per page)
  XSS            the dead letter's error text that must render as text
  BENCH          "1": only time the first render of the overview and of a
                 filtered dead list (a big store), print it, check nothing;
                 "consoles": open CONSOLES (5) overviews, logged in, and
                 keep them open SECONDS (60), each refreshing every 2 s

Each check prints "ok ..." or "FAIL ..."; the exit status is the number of
failures (0 = passed), 77 when no browser can be started.
"""
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

URL = os.environ["M2W_URL"]
ART = os.environ.get("ARTEFACTS", ".")
FAILS = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILS.append(what)
    return cond


# ----------------------------------------------------------- WebDriver

class WebDriverError(Exception):
    def __init__(self, status, value):
        super().__init__("%s: %s" % (value.get("error"), value.get("message", "")[:300]))
        self.error = value.get("error")


class Browser:
    """A chromedriver on a free port and one headless Chromium session."""

    def __init__(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.log = open(os.path.join(ART, "chromedriver.log"), "w")
        self.proc = subprocess.Popen(
            ["chromedriver", "--port=%d" % self.port],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.base = "http://127.0.0.1:%d" % self.port
        for _ in range(100):
            try:
                self._call("GET", "/status")
                break
            except (OSError, WebDriverError):
                time.sleep(0.1)
        self.profile = tempfile.mkdtemp(prefix="m2w-chromium.")
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--no-first-run",
                         "--window-size=1280,900",
                         "--user-data-dir=" + self.profile]}}}}
        self.sid = self._call("POST", "/session", caps)["sessionId"]

    def _call(self, method, path, body=None, timeout=60):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read().decode() or "{}").get("value")
        except urllib.error.HTTPError as e:
            value = json.loads(e.read().decode() or "{}").get("value", {})
            raise WebDriverError(e.code, value) from None

    def s(self, method, path, body=None):
        return self._call(method, "/session/%s%s" % (self.sid, path), body)

    def go(self, path):
        self.s("POST", "/url", {"url": URL + path})

    def url(self):
        return self.s("GET", "/url")

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def js_async(self, script, *args):
        return self.s("POST", "/execute/async", {"script": script, "args": list(args)})

    def find(self, css):
        v = self.s("POST", "/element", {"using": "css selector", "value": css})
        return list(v.values())[0]

    def click(self, css):
        self.s("POST", "/element/%s/click" % self.find(css), {})

    def type(self, css, text):
        el = self.find(css)
        self.s("POST", "/element/%s/clear" % el, {})
        self.s("POST", "/element/%s/value" % el, {"text": text})

    def wait(self, script, what, timeout=10.0, *args):
        """Until the JS expression `script` (a function body returning a
        value) is truthy; returns it, or None after a FAIL."""
        t0 = time.time()
        while time.time() - t0 < timeout:
            try:
                v = self.js(script, *args)
            except WebDriverError:
                v = None
            if v:
                return v
            time.sleep(0.1)
        check(False, "%s (waited %.0f s)" % (what, timeout))
        return None

    def ready(self, what, timeout=10.0):
        return self.wait("return document.body && document.body.dataset.ready === '1'",
                         what + ": the page rendered", timeout)

    def alert_open(self):
        try:
            self.s("GET", "/alert/text")
            return True
        except WebDriverError as e:
            return e.error != "no such alert"

    def screenshot(self, name):
        png = base64.b64decode(self.s("GET", "/screenshot"))
        path = os.path.join(ART, name + ".png")
        with open(path, "wb") as f:
            f.write(png)
        print("     screenshot " + path)

    def console_errors(self):
        try:
            logs = self.s("POST", "/se/log", {"type": "browser"}) or []
        except WebDriverError:
            return []
        return [l["message"] for l in logs if l.get("level") == "SEVERE"]

    def close(self):
        try:
            self.s("DELETE", "")
        except Exception:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        subprocess.run(["rm", "-rf", self.profile])
        self.log.close()


# -------------------------------------------------------------- helpers

def qctl(*args):
    out = subprocess.run([os.environ["QCTL"], "-d", os.environ["STORE"]] + list(args),
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out) if "--json" in args else out


def login(b, user, password):
    b.go("/ui/login")
    b.type("input[name=user]", user)
    b.type("input[name=password]", password)
    b.click("#login-submit")


def counts_on_page(b):
    return b.js("""
        var out = {};
        document.querySelectorAll('#counts td[data-type][data-state]').forEach(function (td) {
            var t = td.dataset.type;
            if (t === '*') return;
            out[t] = out[t] || {};
            out[t][td.dataset.state] = parseInt(td.textContent.replace(/[^0-9]/g, ''), 10);
        });
        return out;""")


def post_without_csrf(b):
    return b.js_async("""
        var done = arguments[arguments.length - 1];
        fetch('/ui/api/pause', {method: 'POST', credentials: 'same-origin',
              headers: {'Content-Type': 'application/json'},
              body: JSON.stringify({type: null, paused: false})})
          .then(function (r) { done(r.status); }, function (e) { done(String(e)); });""")


def first_render(b, path, what):
    b.go(path)
    if not b.ready(what, 30):
        return None
    return b.js("return window.m2wFirstRenderMs")


# ---------------------------------------------------------------- tests

def bench(b):
    login(b, os.environ["M2W_USER"], os.environ["M2W_PASSWORD"])
    b.ready("overview after the login", 30)
    for name, path in (("overview", "/ui/"),
                       ("dead letters", "/ui/dead"),
                       ("dead list, filtered", "/ui/tasks?state=dead&type=tracking&q=does%20not%20allow"),
                       ("dead list", "/ui/tasks?state=dead")):
        ms = [first_render(b, path, name) for _ in range(3)]
        ms = [m for m in ms if m is not None]
        if ms:
            print("bench first render %-22s %s ms (3 loads: %s)" % (
                name, round(sorted(ms)[len(ms) // 2]), ", ".join("%d" % m for m in ms)))
    b.screenshot("bench-overview")


def consoles():
    n = int(os.environ.get("CONSOLES", "5"))
    secs = float(os.environ.get("SECONDS", "60"))
    bs = []
    try:
        for _ in range(n):
            b = Browser()
            bs.append(b)
            login(b, os.environ["M2W_USER"], os.environ["M2W_PASSWORD"])
            b.ready("overview after the login", 30)
        print("bench consoles open %d" % n, flush=True)
        time.sleep(secs)
        print("bench consoles done", flush=True)
    finally:
        for b in bs:
            b.close()


def main_tests(b):
    user, password = os.environ["M2W_USER"], os.environ["M2W_PASSWORD"]
    xss = os.environ["XSS"]

    # without the cookie every page goes to the login
    for page in ("/ui/", "/ui/tasks", "/ui/dead", "/ui/task?id=1"):
        b.go(page)
        check("/ui/login?next=" in b.url(), "without a session %s goes to the login (%s)" % (page, b.url()))
    b.screenshot("login")

    # a wrong password stays on the login with the server's message
    login(b, user, "not the password")
    msg = b.wait("var e = document.querySelector('#login-error'); return e && e.textContent",
                 "the login error is shown", 10)
    check(msg and "wrong user or password" in msg, "a wrong password is refused: %r" % msg)

    # log in, land on the page asked for
    b.go("/ui/tasks?state=dead")
    login_url = b.url()
    check("next=" in login_url, "the login keeps where to go")
    b.type("input[name=user]", user)
    b.type("input[name=password]", password)
    b.click("#login-submit")
    b.wait("return location.pathname === '/ui/tasks'", "after the login: back to /ui/tasks", 10)
    b.ready("tasks")
    check(b.js("return document.cookie.indexOf('m2w_session') < 0"),
          "the session cookie is HttpOnly (not in document.cookie)")

    # the overview's counts are qctl's
    b.go("/ui/")
    b.ready("overview")
    time.sleep(2.5)  # one refresh of the live counts
    page = counts_on_page(b)
    st = qctl("stats", "--json")
    want = {t["type"]: t["counts"] for t in st["types"]}
    check(page == want, "the overview's counts equal qctl stats --json\n     page: %s\n     qctl: %s" % (page, want))
    for sel in ("#breaker", "#oldest-ready", "#store-use", "#disk-free", "#history-since",
                "#chart-throughput svg", "#chart-latency svg", "#watch"):
        check(b.js("var e = document.querySelector(arguments[0]); return !!e && e.textContent.trim().length >= 0 && e.getBoundingClientRect().height > 0", sel),
              "overview shows " + sel)
    check(b.js("return document.querySelector('#breaker').textContent.indexOf('closed') >= 0"),
          "the breaker reads closed")
    check(b.js("return document.querySelector('#watch').textContent.indexOf('shipments.csv') >= 0"),
          "the watched directory shows the last file taken")
    b.screenshot("overview")

    # pause from the page: qctl sees it
    b.click('button[data-action="pause"][data-type="tracking"]')
    t0 = time.time()
    paused = False
    while time.time() - t0 < 10 and not paused:
        paused = any(t["type"] == "tracking" and t["paused"] for t in qctl("stats", "--json")["types"])
        time.sleep(0.2)
    check(paused, "pause from the page: qctl stats shows tracking paused")
    b.wait("var e = document.querySelector('button[data-action=\"pause\"][data-type=\"tracking\"]'); return e && /resume/i.test(e.textContent)",
           "the button turns to Resume", 10)
    b.screenshot("overview-paused")

    # a POST without the CSRF token is refused
    check(post_without_csrf(b) == 403, "a POST without the CSRF token is refused (403)")
    check(not any(t["type"] == "tracking" and not t["paused"] for t in qctl("stats", "--json")["types"]),
          "the refused POST changed nothing")

    # the dead letters: the XSS text renders as text
    b.go("/ui/dead")
    b.ready("dead letters")
    texts = b.js("return Array.prototype.map.call(document.querySelectorAll('#groups td.error'), function (e) { return e.textContent; })")
    check(any(xss in t for t in texts), "the dead letter %r renders as text (%s)" % (xss, texts))
    check(b.js("return document.querySelectorAll('#groups img, #groups script, #groups [onerror]').length") == 0,
          "no element was made from the error text")
    check(not b.alert_open(), "no dialog opened")
    b.screenshot("dead")

    # requeue one dead task from its page; qctl shows it ready
    dead = qctl("list", "--state", "dead", "--type", "price", "--json")["tasks"]
    xss_task = [t for t in dead if xss in (t.get("last_error") or "")]
    check(bool(xss_task), "a dead price task holds the XSS text")
    if xss_task:
        tid = xss_task[0]["id"]
        qctl("pause", "price")  # so no worker takes it before qctl looks
        b.go("/ui/task?id=%d" % tid)
        b.ready("task %d" % tid)
        hist = b.js("return document.querySelector('#history').textContent")
        check(xss in hist, "the task's history shows Magento's message as text")
        check(b.js("return document.querySelectorAll('#history img').length") == 0 and not b.alert_open(),
              "no element or dialog from the history")
        b.screenshot("task")
        b.click("#requeue")
        b.wait("var c = document.querySelector('#confirm'); return c && c.getBoundingClientRect().height > 0",
               "the requeue asks first", 5)
        b.click("#confirm-yes")
        t0 = time.time()
        state = None
        while time.time() - t0 < 10 and state != "ready":
            state = qctl("show", str(tid), "--json")["state"]
            time.sleep(0.2)
        check(state == "ready", "a dead task requeued from the page is ready in qctl show (%s)" % state)

    # a group requeue: the count is shown before
    b.go("/ui/dead")
    b.ready("dead letters again")
    n_groups = b.js("return document.querySelectorAll('#groups tr.group').length")
    if check(n_groups > 0, "dead-letter groups listed (%s)" % n_groups):
        want = b.js("return parseInt(document.querySelector('#groups tr.group td.count').textContent.replace(/[^0-9]/g, ''), 10)")
        b.click("#groups tr.group button.requeue-group")
        text = b.wait("var c = document.querySelector('#confirm-text'); return c && c.getBoundingClientRect().height > 0 && c.textContent",
                      "the group requeue asks first", 5)
        check(text and str(want) in text.replace(",", ""), "the confirmation shows the count %s: %r" % (want, text))
        b.click("#confirm-no")

    # the tasks list with a filter
    b.go("/ui/tasks?state=done&type=tracking")
    b.ready("tasks (done)")
    rows = b.js("return document.querySelectorAll('#tasks tr[data-id]').length")
    check(rows > 0, "the done tracking tasks are listed (%s)" % rows)
    b.screenshot("tasks")

    errors = [e for e in b.console_errors() if "favicon" not in e]
    csp = [e for e in errors if "Content Security Policy" in e or "Refused to" in e]
    check(not csp, "no CSP violation in the browser's console: %s" % csp[:3])

    # logout: the pages go to the login again
    b.go("/ui/")
    b.ready("overview before logout")
    b.click("#logout")
    b.wait("return location.pathname === '/ui/login'", "logout goes to the login", 10)
    b.go("/ui/dead")
    check("/ui/login" in b.url(), "after logout /ui/dead goes to the login")


def main():
    os.makedirs(ART, exist_ok=True)
    if os.environ.get("BENCH") == "consoles":
        consoles()
        return 0
    try:
        b = Browser()
    except Exception as e:  # no usable browser here
        print("cannot start Chromium through chromedriver: %s" % e)
        return 77
    try:
        if os.environ.get("BENCH") == "1":
            bench(b)
        else:
            main_tests(b)
    except Exception as e:
        check(False, "the test stopped: %r" % e)
        try:
            b.screenshot("failure")
        except Exception:
            pass
    finally:
        b.close()
    print("%d failed" % len(FAILS))
    return min(len(FAILS), 70)


if __name__ == "__main__":
    sys.exit(main())
