#!/usr/bin/env python3
"""A sample issuer for rekey's exec issuer (protocol 1).

rekey runs this once per call, with no shell: it writes one JSON request and a
newline to stdin, then closes it; this writes one JSON response to stdout and
exits. The protocol is in rekey's README ("The exec issuer protocol").

This sample keeps its keys in a local JSON file (--state PATH), so it works
without any API: use it to try rekey, and as the skeleton of a real issuer.
To adapt it, replace the functions in the "the API" section with calls to
your provider, keeping the rules each one states; the protocol handling
below them stays as it is.

Rules every issuer script must keep:
- never print a key value anywhere but the create response on stdout
  (not to stderr, not in an error message);
- answer "unknown_outcome" for a create whose result you could not see (a
  timeout talking to the API): rekey then looks the label up and revokes
  what it finds before trying again. Any other error on create promises that
  no key was created;
- revoking a revoked key succeeds; an unknown key ID is "not_found".
"""

import argparse
import datetime
import fcntl
import json
import os
import secrets
import sys

PROTOCOL = 1
PREFIX_LEN = 12


class Failure(Exception):
    """An error response: code is one of the protocol's error codes."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


# --- the API: replace these with calls to your provider ----------------------

class Store:
    """Keys in a JSON file, locked for the whole call."""

    def __init__(self, path):
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        raw = os.read(self.fd, 64 << 20)
        self.keys = json.loads(raw)["keys"] if raw.strip() else []

    def save(self):
        data = json.dumps({"keys": self.keys}).encode()
        os.lseek(self.fd, 0, os.SEEK_SET)
        os.ftruncate(self.fd, 0)
        os.write(self.fd, data)
        os.fsync(self.fd)


def public(k):
    """The key record of the protocol: never the value."""
    return {f: k.get(f) for f in ("id", "label", "prefix", "status", "created_at", "last_used_at", "revoked_at")}


def api_create(store, label):
    if not label or len(label) > 64 or not all(c.isalnum() or c in "._-" for c in label):
        raise Failure("invalid_label", "labels are 1-64 letters, digits, . _ -")
    if sum(1 for k in store.keys if k["status"] == "active") >= 10:
        raise Failure("key_limit", "the account holds 10 active keys")
    value = "sk_sample_" + secrets.token_hex(20)
    k = {"id": "key_" + secrets.token_hex(12), "label": label, "prefix": value[:PREFIX_LEN],
         "status": "active", "created_at": now(), "last_used_at": None, "revoked_at": None, "value": value}
    store.keys.append(k)
    store.save()
    return k


def api_keys(store):
    return sorted(store.keys, key=lambda k: k["created_at"], reverse=True)


def api_get(store, key_id):
    for k in store.keys:
        if k["id"] == key_id:
            return k
    raise Failure("not_found", "no key with that id")


def api_revoke(store, key_id):
    k = api_get(store, key_id)
    if k["status"] != "revoked":
        k["status"], k["revoked_at"] = "revoked", now()
        store.save()


def api_verify(store, value):
    for k in store.keys:
        if k["status"] == "active" and secrets.compare_digest(k["value"], value):
            k["last_used_at"] = now()
            store.save()
            return
    raise Failure("unauthorized", "key refused")


# --- the protocol ------------------------------------------------------------

def handle(store, req):
    op = req.get("op")
    if op == "create":
        k = api_create(store, req.get("label", ""))
        return {"key": public(k), "value": k["value"]}
    if op == "get":
        return {"key": public(api_get(store, req.get("id", "")))}
    if op == "list":
        return {"keys": [public(k) for k in api_keys(store) if k["status"] == "active"]}
    if op == "find":
        return {"keys": [public(k) for k in api_keys(store) if k["label"] == req.get("label")]}
    if op == "revoke":
        api_revoke(store, req.get("id", ""))
        return {"ok": True}
    if op == "verify":
        api_verify(store, req.get("value", ""))
        return {"ok": True}
    if op == "identify":  # declared with abilities: [identify]
        value = req.get("value", "")
        found = [k for k in store.keys if k["status"] == "active" and len(value) > PREFIX_LEN and value.startswith(k["prefix"])]
        if len(found) != 1:
            raise Failure("not_found", "%d active keys carry that prefix" % len(found))
        return {"key": public(found[0])}
    if op == "last_used":  # declared with abilities: [last_used]
        return {"last_used_at": api_get(store, req.get("id", ""))["last_used_at"]}
    raise Failure("unsupported", "unknown op")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", required=True, help="the JSON file holding the keys")
    args = parser.parse_args()
    try:
        req = json.loads(sys.stdin.read())
    except ValueError:
        print("sample-issuer: the request is not JSON", file=sys.stderr)
        return 2
    if req.get("protocol") != PROTOCOL:
        print("sample-issuer: unsupported protocol version", file=sys.stderr)
        return 2
    try:
        resp = handle(Store(args.state), req)
    except Failure as f:
        resp = {"error": {"code": f.code, "message": f.message}}
    json.dump(resp, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
