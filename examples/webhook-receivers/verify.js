// Verify a notion-oauth-handler webhook: node verify.js < body, with the header in $SIGNATURE.
const crypto = require("crypto");

function verify(secret, header, body, now, tolerance = 300) {
  const fields = Object.fromEntries(header.split(",").map((part) => part.split("=", 2)));
  if (!/^\d+$/.test(fields.t || "")) return false; // not a signature header of ours
  if (Math.abs(now - Number(fields.t)) > tolerance) return false; // a replay
  const expected = crypto.createHmac("sha256", secret).update(`${fields.t}.`).update(body).digest();
  const given = Buffer.from(fields.v1 || "", "hex");
  return given.length === expected.length && crypto.timingSafeEqual(given, expected);
}

const body = require("fs").readFileSync(0);
const now = Number(process.env.NOW || Date.now() / 1000);
const ok = verify(process.env.WEBHOOK_SECRET, process.env.SIGNATURE, body, now);
console.log(ok ? "valid" : "invalid");
process.exit(ok ? 0 : 1);
