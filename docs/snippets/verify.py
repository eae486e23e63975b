# Python 3.9+, standard library only.
import base64
import hashlib
import hmac
import json
import time

TOLERANCE_SECONDS = 5 * 60


def verify_postback(secret: str, headers, body: bytes, now=None) -> dict:
    """Returns the parsed postback, or raises ValueError.

    secret: your whsec_ secret (v1, HMAC) or, on key pairs, your whpk_ public key (v1a, Ed25519).
    headers: any mapping with lower-case names (Flask's and Django's request.headers
    are case-insensitive). body: the raw request body bytes, not re-encoded JSON.
    """
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not msg_id or not timestamp or not signatures:
        raise ValueError("missing webhook headers")
    now = time.time() if now is None else now
    if not (timestamp.isascii() and timestamp.isdigit()) or abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        raise ValueError("webhook-timestamp too old or too new")
    signed = f"{msg_id}.{timestamp}.".encode() + body
    if secret.startswith("whpk_"):
        return _verify_v1a(secret, signatures, signed, body)
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    # Several entries during a secret rotation: any one may match. Compared as bytes: compare_digest
    # raises TypeError on non-ASCII text, and a forged header is a rejection, not a crash.
    for entry in signatures.split(" "):
        version, _, signature = entry.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode(), expected):
            return json.loads(body)
    raise ValueError("no valid signature")


def _verify_v1a(public_key: str, signatures: str, signed: bytes, body: bytes) -> dict:
    # pip install cryptography (only shops on key pairs need it)
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key.removeprefix("whpk_")))
    for entry in signatures.split(" "):
        version, _, signature = entry.partition(",")
        if version != "v1a":
            continue
        try:
            key.verify(base64.b64decode(signature), signed)
            return json.loads(body)
        except (InvalidSignature, ValueError):
            continue
    raise ValueError("no valid signature")


# Flask:
# @app.post("/postbacks")
# def postbacks():
#     postback = verify_postback(os.environ["APAY_WEBHOOK_SECRET"], request.headers, request.get_data())
#     ... deduplicate on request.headers["webhook-id"]
#     return "", 204
