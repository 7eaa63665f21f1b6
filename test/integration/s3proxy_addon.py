"""A mitmproxy addon that stands between litestream and the S3 server of
the tests and misbehaves on purpose, the way S3 and networks do.

mitmdump runs it in reverse-proxy mode with keep_host_header=true (Host is
part of the SigV4 signature, so it must reach the server as the client sent
it). The test drives it through a JSON plan file, named by the environment
variable S3PROXY_PLAN and read again whenever it changes, so that one proxy
serves a whole test module:

    {"rules": [
        {"match": "^PUT .*\\\\.wal\\\\.lz4", "action": "status", "status": 503,
         "code": "SlowDown", "skip": 0, "count": 3},
        ...],
     "region": "us-east-1"}

Each rule counts the requests whose "METHOD /path?query" matches its regular
expression; after letting `skip` of them through it acts on the next `count`
(0: on every one). Actions:

    status        answer at once with `status` and an S3 <Error> document
                  carrying `code`; the server never sees the request
    reset         close the client's connection instead of forwarding
    reset_after   forward (the server stores what it was sent), then close
                  the client's connection instead of answering
    delay         hold the request `delay_ms` before forwarding it
    truncate      forward, then answer with the status and headers the server
                  sent (its Content-Length included) but only the first half
                  of the body, and close the connection: a transfer cut off
                  in the middle
    short         forward, then answer with the first half of the body as a
                  complete message (its Content-Length made to match): a
                  body cut short where HTTP cannot tell

With "region", every request whose SigV4 credential scope names another
region is refused as AWS refuses it: 400 AuthorizationHeaderMalformed with
the bucket's region in <Region> (the test server itself accepts any
region).

Each request appends one JSON line to S3PROXY_LOG: method, path, its Range
header (or null), and the action taken ("pass" when none).
"""
import asyncio
import json
import os
import re

from mitmproxy import http

PLAN = os.environ.get("S3PROXY_PLAN", "")
LOG = os.environ.get("S3PROXY_LOG", "")
SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/s3/aws4_request")


def error_body(code, message, extra=""):
    return (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message>{extra}<RequestId>s3proxy</RequestId></Error>")


class S3Proxy:
    def __init__(self):
        self.stamp = None
        self.rules = []
        self.region = None

    def reload_plan(self):
        try:
            st = os.stat(PLAN)
        except OSError:
            self.stamp, self.rules, self.region = None, [], None
            return
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self.stamp:
            return
        with open(PLAN) as f:
            plan = json.load(f)
        self.stamp = stamp
        self.region = plan.get("region")
        self.rules = []
        for r in plan.get("rules", []):
            self.rules.append(dict(r, regex=re.compile(r["match"]), seen=0, done=0))

    def decide(self, what):
        for r in self.rules:
            if not r["regex"].search(what):
                continue
            r["seen"] += 1
            count = r.get("count", 0)
            if r["seen"] > r.get("skip", 0) and (count == 0 or r["done"] < count):
                r["done"] += 1
                return r
        return None

    def log(self, flow, action):
        if LOG:
            with open(LOG, "a") as f:
                f.write(json.dumps({"method": flow.request.method, "path": flow.request.path,
                                    "range": flow.request.headers.get("range"),
                                    "action": action}) + "\n")

    async def request(self, flow: http.HTTPFlow):
        self.reload_plan()
        what = f"{flow.request.method} {flow.request.path}"
        if self.region:
            m = SCOPE.search(flow.request.headers.get("authorization", ""))
            if m and m.group(1) != self.region:
                flow.response = http.Response.make(
                    400, error_body("AuthorizationHeaderMalformed",
                                    f"the region '{m.group(1)}' is wrong; expecting '{self.region}'",
                                    f"<Region>{self.region}</Region>"),
                    {"Content-Type": "application/xml"})
                self.log(flow, "region")
                return
        rule = self.decide(what)
        action = rule["action"] if rule else "pass"
        flow.metadata["s3proxy"] = action
        self.log(flow, action)
        if action == "status":
            flow.response = http.Response.make(
                rule.get("status", 503), error_body(rule.get("code", "SlowDown"), "injected"),
                {"Content-Type": "application/xml"})
        elif action == "reset":
            flow.kill()
        elif action == "delay":
            await asyncio.sleep(rule.get("delay_ms", 1000) / 1000.0)

    def responseheaders(self, flow: http.HTTPFlow):
        if flow.metadata.get("s3proxy") != "truncate":
            return
        # Streamed, so the headers go out as the server sent them (a
        # Content-Length, or chunked encoding); the body is held back and
        # only its first half sent, then response() kills the connection
        # before the message could end.
        held = []

        # No empty chunks: mitmproxy would frame one as chunked encoding's
        # last chunk, and the cut-off body would look complete.
        def cut(data):
            if data:
                held.append(data)
                return []
            whole = b"".join(held)
            return [whole[: len(whole) // 2]] if len(whole) > 1 else []
        flow.response.stream = cut

    def response(self, flow: http.HTTPFlow):
        action = flow.metadata.get("s3proxy")
        if action in ("reset_after", "truncate"):
            flow.kill()
        elif action == "short":
            body = flow.response.raw_content or b""
            flow.response.headers.pop("transfer-encoding", None)
            flow.response.raw_content = body[: len(body) // 2]
            flow.response.headers["content-length"] = str(len(flow.response.raw_content))


addons = [S3Proxy()]
