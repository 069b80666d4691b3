# Make a signed link to notion-oauth-handler's /connect for one of your users.
import hashlib, hmac, time
from urllib.parse import urlencode

def connect_link(base: str, secret: str, ref: str = "", return_to: str = "", ttl: int = 3600) -> str:
    expires = int(time.time()) + ttl
    message = f"noh-connect-link-v1\n{ref}\n{return_to}\n{expires}".encode()
    sig = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    params = {k: v for k, v in {"ref": ref, "return_to": return_to}.items() if v}
    return f"{base}/connect?" + urlencode({**params, "expires": expires, "sig": sig})

if __name__ == "__main__":
    import os
    print(connect_link(os.environ["BASE"], os.environ["LINK_SECRET"], os.environ.get("REF", ""),
                       os.environ.get("RETURN_TO", ""), int(os.environ.get("TTL", "3600"))))
