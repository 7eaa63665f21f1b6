"""Test endpoints for litestream's credential chain, on 127.0.0.1: the
container credentials endpoint (ECS, EKS Pod Identity), IMDSv2 (EC2) and
STS AssumeRoleWithWebIdentity, each speaking its documented protocol.
None of these services can run here, so this small server plays them; the
credentials it hands out are real: radosgw's own STS issues them
(GetSessionToken with the test user's static key, which only this server
holds), and the same radosgw verifies them on every S3 request.

    server = CredsServer(issuer)      # issuer() -> {AccessKeyId, ...}
    server.url                        # http://127.0.0.1:PORT
    server.lifetime = 6               # the Expiration it claims, seconds
    server.log                        # [(kind, detail), ...] per request

Paths:

    GET  /container                         container endpoint; with
                                            container_token set, the
                                            Authorization header must
                                            equal it (else 401)
    PUT  /latest/api/token                  IMDSv2 session token (needs
                                            X-aws-ec2-metadata-token-ttl-seconds)
    GET  /latest/meta-data/iam/security-credentials/       "test-role"
    GET  /latest/meta-data/iam/security-credentials/test-role
                                            (both need the session token)
    POST /                                  STS (form-encoded Action=
                                            AssumeRoleWithWebIdentity)

Behaviour knobs: `broken` (a set of "container", "imds") answers malformed
JSON there; `bogus_first` hands out that many credentials with a session
token radosgw rejects before real ones; `sts_tokens` maps a web identity
token to "ok", "expired" (ExpiredTokenException) or anything else
(InvalidIdentityToken); `sts_fail_next` answers that many STS requests
with IDPCommunicationError first.
"""
import datetime
import http.server
import json
import threading
import urllib.parse

IMDS_TOKEN = "imds-session-token-1"
ROLE = "test-role"
CREDS_PATH = "/latest/meta-data/iam/security-credentials/"


def rgw_issuer(s3):
    """A function that asks radosgw's STS for a new session (15 minutes,
    its minimum) with the test user's static key; returns its credentials."""
    import botocore.session  # Debian's python3-botocore, awscli's dependency

    client = botocore.session.get_session().create_client(
        "sts", endpoint_url=s3.endpoint, region_name=s3.region,
        aws_access_key_id=s3.access_key, aws_secret_access_key=s3.secret_key)

    def issue():
        c = client.get_session_token(DurationSeconds=900)["Credentials"]
        return {"AccessKeyId": c["AccessKeyId"], "SecretAccessKey": c["SecretAccessKey"],
                "SessionToken": c["SessionToken"]}
    return issue


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class CredsServer:
    def __init__(self, issuer):
        self.issuer = issuer
        self.lifetime = 3600
        self.container_token = None
        self.broken = set()
        self.bogus_first = 0
        self.sts_tokens = {}
        self.sts_fail_next = 0
        self.log = []
        self.issued = []  # access key ids handed out, in order
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def answer(self, status, body, ctype="application/json"):
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                server.handle(self, "GET")

            def do_PUT(self):
                server.handle(self, "PUT")

            def do_POST(self):
                server.handle(self, "POST")

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def count(self, kind):
        with self.lock:
            return sum(1 for k, _ in self.log if k == kind)

    def credentials(self):
        """A fresh session, with the Expiration this server claims."""
        with self.lock:
            bogus = self.bogus_first > 0
            if bogus:
                self.bogus_first -= 1
        c = dict(self.issuer())
        if bogus:
            # Base64 like a real token, but no session radosgw ever issued.
            c["SessionToken"] = "Ym9ndXMtc2Vzc2lvbi10b2tlbg=="
        c["Expiration"] = iso(datetime.datetime.now(datetime.timezone.utc) +
                              datetime.timedelta(seconds=self.lifetime))
        with self.lock:
            self.issued.append(c["AccessKeyId"])
        return c

    def handle(self, h, method):
        path = h.path
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length).decode() if length else ""
        if method == "GET" and path == "/container":
            return self.container(h)
        if path == "/latest/api/token" and method == "PUT":
            if not h.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                return h.answer(400, "missing TTL", "text/plain")
            self.note("imds-token", "")
            return h.answer(200, IMDS_TOKEN, "text/plain")
        if path.startswith(CREDS_PATH) and method == "GET":
            return self.imds(h, path[len(CREDS_PATH):])
        if path == "/" and method == "POST":
            return self.sts(h, urllib.parse.parse_qs(body))
        h.answer(404, json.dumps({"code": "NotFound", "message": path}))

    def note(self, kind, detail):
        with self.lock:
            self.log.append((kind, detail))

    def container(self, h):
        auth = h.headers.get("Authorization")
        self.note("container", auth)
        if self.container_token is not None and auth != self.container_token:
            return h.answer(401, json.dumps({"code": "InvalidToken",
                                             "message": "wrong authorization token"}))
        if "container" in self.broken:
            return h.answer(200, '{"AccessKeyId": "AKID", "SecretAccessKey": ')
        c = self.credentials()
        h.answer(200, json.dumps({"AccessKeyId": c["AccessKeyId"],
                                  "SecretAccessKey": c["SecretAccessKey"],
                                  "Token": c["SessionToken"], "Expiration": c["Expiration"],
                                  "RoleArn": "arn:aws:iam::123456789012:role/test"}))

    def imds(self, h, rest):
        if h.headers.get("X-aws-ec2-metadata-token") != IMDS_TOKEN:
            return h.answer(401, "", "text/plain")
        self.note("imds", rest)
        if rest == "":
            return h.answer(200, ROLE, "text/plain")
        if rest != ROLE:
            return h.answer(404, "", "text/plain")
        if "imds" in self.broken:
            return h.answer(200, "{not json")
        c = self.credentials()
        h.answer(200, json.dumps({"Code": "Success", "LastUpdated": iso(
            datetime.datetime.now(datetime.timezone.utc)), "Type": "AWS-HMAC",
            "AccessKeyId": c["AccessKeyId"], "SecretAccessKey": c["SecretAccessKey"],
            "Token": c["SessionToken"], "Expiration": c["Expiration"]}, indent=2))

    def sts_error(self, h, status, code, message):
        h.answer(status, f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                 f"<Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message>"
                 f"</Error><RequestId>test</RequestId></ErrorResponse>", "text/xml")

    def sts(self, h, form):
        one = {k: v[0] for k, v in form.items()}
        token = one.get("WebIdentityToken", "")
        self.note("sts", (one.get("Action"), one.get("RoleArn"), one.get("RoleSessionName"),
                          token))
        if one.get("Action") != "AssumeRoleWithWebIdentity" or one.get("Version") != "2011-06-15":
            return self.sts_error(h, 400, "InvalidAction", "unknown action")
        with self.lock:
            fail = self.sts_fail_next > 0
            if fail:
                self.sts_fail_next -= 1
        if fail:
            return self.sts_error(h, 400, "IDPCommunicationError",
                                  "the identity provider could not be reached")
        verdict = self.sts_tokens.get(token)
        if verdict == "expired":
            return self.sts_error(h, 400, "ExpiredTokenException",
                                  "Token expired: current date/time must be before the "
                                  "expiration date/time")
        if verdict != "ok":
            return self.sts_error(h, 400, "InvalidIdentityToken", "the token is not valid")
        c = self.credentials()
        h.answer(200, f"""<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:default:app</SubjectFromWebIdentityToken>
    <AssumedRoleUser>
      <Arn>{one.get("RoleArn")}/{one.get("RoleSessionName")}</Arn>
      <AssumedRoleId>AROATEST:{one.get("RoleSessionName")}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>{c["AccessKeyId"]}</AccessKeyId>
      <SecretAccessKey>{c["SecretAccessKey"]}</SecretAccessKey>
      <SessionToken>{c["SessionToken"]}</SessionToken>
      <Expiration>{c["Expiration"]}</Expiration>
    </Credentials>
    <Audience>sts.amazonaws.com</Audience>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>test</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>
""", "text/xml")
