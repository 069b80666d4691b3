# Verify a notion-oauth-handler webhook: python3 verify.py < body, with the header in $SIGNATURE.
import hashlib, hmac, os, sys, time

def verify(secret: str, header: str, body: bytes, now: float, tolerance: int = 300) -> bool:
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp, signature = fields["t"], fields["v1"]
        age = abs(now - int(timestamp))
    except (KeyError, ValueError):
        return False  # not a signature header of ours
    if age > tolerance:
        return False  # too old (or from the future): a replay
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)

if __name__ == "__main__":
    now = float(os.environ.get("NOW", time.time()))
    ok = verify(os.environ["WEBHOOK_SECRET"], os.environ["SIGNATURE"], sys.stdin.buffer.read(), now)
    print("valid" if ok else "invalid")
    sys.exit(0 if ok else 1)
