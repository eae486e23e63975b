# Python 3.9+, standard library only.
import base64
import hashlib
import hmac
import json
import time

TOLERANCE_SECONDS = 5 * 60


def verify_postback(secret: str, headers, body: bytes, now=None) -> dict:
    """Returns the parsed postback, or raises ValueError.

    headers: any mapping with lower-case names (Flask's and Django's request.headers
    are case-insensitive). body: the raw request body bytes, not re-encoded JSON.
    """
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not msg_id or not timestamp or not signatures:
        raise ValueError("missing webhook headers")
    now = time.time() if now is None else now
    if not timestamp.isdigit() or abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        raise ValueError("webhook-timestamp too old or too new")
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    # Several entries during a secret rotation: any one may match.
    for entry in signatures.split(" "):
        version, _, signature = entry.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return json.loads(body)
    raise ValueError("no valid signature")


# Flask:
# @app.post("/postbacks")
# def postbacks():
#     postback = verify_postback(os.environ["APAY_WEBHOOK_SECRET"], request.headers, request.get_data())
#     ... deduplicate on request.headers["webhook-id"]
#     return "", 204
