#!/usr/bin/python3
"""A second, independent Signature V4 signer for test/unit/test_sigv4.

It signs with botocore's S3SigV4Auth (Debian's python3-botocore; run it with
/usr/bin/python3, the only interpreter that imports Debian's botocore) and
does its own URL building with botocore's percent_encode, so neither the
encoding nor the signing is shared with the C code under test.

Protocol, one JSON object per line on each side, lock-step:

  first line out: {"ready": true, "botocore": VERSION}
                  or {"skip": REASON} and exit 0 when botocore will not import
  each line in:   {"method", "host", "path" (raw key path, not encoded),
                   "query": [[name, value or null], ...] (raw),
                   "headers": [[name, value], ...] (signed; repeats allowed),
                   "body_b64", "unsigned" (bool), "region", "service",
                   "access_key", "secret_key", "token" (or null),
                   "amz_date" (YYYYMMDDTHHMMSSZ)}
  each line out:  {"creq", "sts", "authorization", "signature",
                   "target" (encoded path and query, pairs in sorted order),
                   "headers": {lowercase name: value} as botocore set them}
                  or {"error": message}

The clock is the request's amz_date, not the wall clock, and a Date header
is not special-cased (the C signer always uses X-Amz-Date).
"""
import base64
import json
import sys

try:
    import botocore
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from botocore.utils import percent_encode
except Exception as exc:  # ImportError, or a broken install
    print(json.dumps({"skip": "botocore is not importable by %s: %s" % (sys.executable, exc)}),
          flush=True)
    sys.exit(0)


class FixedClockAuth(S3SigV4Auth):
    """S3SigV4Auth with the signing time and payload signing chosen by the test."""

    def __init__(self, credentials, service, region, sign_payload):
        super().__init__(credentials, service, region)
        self.sign_payload = sign_payload

    def _set_necessary_date_headers(self, request):
        request.headers["X-Amz-Date"] = request.context["timestamp"]

    def _should_sha256_sign_payload(self, request):
        return self.sign_payload


def wire_target(path, query):
    """The encoded path and query the way an S3 client puts them in the URL."""
    enc_path = percent_encode(path, safe="/~")
    pairs = []
    for name, value in query:
        enc = (percent_encode(name), None if value is None else percent_encode(value))
        pairs.append(enc)
    return enc_path, pairs


def join(pairs):
    return "&".join(n if v is None else n + "=" + v for n, v in pairs)


def sign(req):
    path, pairs = wire_target(req["path"], req["query"])
    url = "https://" + req["host"] + path + ("?" + join(pairs) if pairs else "")
    body = base64.b64decode(req["body_b64"])
    request = AWSRequest(method=req["method"], url=url, data=body)
    # HTTPHeaders appends on assignment, so a repeated name stays repeated.
    for name, value in req["headers"]:
        request.headers[name] = value
    creds = Credentials(req["access_key"], req["secret_key"], req.get("token"))
    auth = FixedClockAuth(creds, req["service"], req["region"], not req["unsigned"])
    request.context["timestamp"] = req["amz_date"]
    # add_auth() without its wall clock: the same steps in the same order.
    auth._modify_request_before_signing(request)
    creq = auth.canonical_request(request)
    sts = auth.string_to_sign(request, creq)
    signature = auth.signature(sts, request)
    auth._inject_signature_to_request(request, signature)
    # Python's sort is stable: equal pairs keep the order given, as in the C code.
    ordered = sorted(pairs, key=lambda p: (p[0], "" if p[1] is None else p[1]))
    return {
        "creq": creq,
        "sts": sts,
        "signature": signature,
        "authorization": request.headers["Authorization"],
        "target": path + ("?" + join(ordered) if ordered else ""),
        "headers": {k.lower(): v for k, v in request.headers.items()},
    }


def main():
    print(json.dumps({"ready": True, "botocore": botocore.__version__}), flush=True)
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        try:
            reply = sign(json.loads(line))
        except Exception as exc:
            reply = {"error": "%s: %s" % (type(exc).__name__, exc)}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
