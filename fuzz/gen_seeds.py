#!/usr/bin/env python3
"""Regenerates fuzz/seeds/ from the test vectors and a few hand-written inputs.

Run from anywhere: python3 fuzz/gen_seeds.py
"""
import base64, glob, hashlib, hmac, json, os, shutil

FUZZ = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(FUZZ, "..", "tests", "vectors", "libmacaroons")
SEEDS = os.path.join(FUZZ, "seeds")


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64e(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(ty, data):
    return bytes([ty]) + varint(len(data)) + data


def v2(identifier, caveats, sig, location=None):
    out = b"\x02" + (field(1, location) if location else b"") + field(2, identifier) + b"\x00"
    for c in caveats:
        out += field(2, c) + b"\x00"
    return out + b"\x00" + field(6, sig)


def mint(key, identifier, caveats):
    sig = hmac.new(key, identifier, hashlib.sha256).digest()
    for c in caveats:
        sig = hmac.new(sig, c, hashlib.sha256).digest()
    return v2(identifier, caveats, sig)


def macvault_identifier(org=b"acme", version=1, token_id=bytes([7] * 16)):
    # postcard: str = varint len + bytes, u32 = varint, [u8; 16] = 16 raw bytes.
    return b"mv1." + b64e(varint(len(org)) + org + varint(version) + token_id).encode()


def write(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def main():
    shutil.rmtree(SEEDS, ignore_errors=True)
    for path in sorted(glob.glob(os.path.join(VECTORS, "*.json"))):
        v = json.load(open(path))
        name = v["name"]
        raw = b64d(v["expected_v2_b64"])
        bundle = raw + b"".join(b64d(d["expected_bound_v2_b64"]) for d in v.get("discharges", []))
        write("v2_decode", name + ".v2", raw)
        write("v2_decode", name + ".v1", b64d(v["expected_v1"]))
        write("bundle_text", name, "mvt_" + b64e(bundle))
        if v.get("discharges"):
            write("verify", name, bundle)

    # Real macvault tokens (signed with the verify target's key, 0x42 * 32).
    key = bytes([0x42] * 32)
    ident = macvault_identifier()
    good = mint(key, ident, [b"org = acme", b"app = web:rw", b"expires < 2030-01-01T00:00:00Z"])
    write("verify", "acme_token.txt", "mvt_" + b64e(good))
    write("verify", "acme_token.bin", good)
    write("verify", "acme_unknown_caveat.txt",
          "mvt_" + b64e(mint(key, ident, [b"org = acme", b"frobnicate = yes"])))
    write("verify", "acme_expired.txt",
          "mvt_" + b64e(mint(key, ident, [b"expires < 2020-01-01T00:00:00Z"])))
    write("verify", "acme_wrong_key.txt",
          "mvt_" + b64e(mint(bytes(32), ident, [b"org = acme"])))
    write("bundle_text", "acme_token", "mvt_" + b64e(good))
    write("v2_decode", "acme_token.v2", good)
    # Inputs for the verify target's mutate-the-seed and signed-predicates paths:
    # 2 bytes of position/split, then bytes to XOR in / NUL-separated predicates.
    write("verify", "mutate_sig", b"\xc0\x01\x01")
    write("verify", "signed_preds", b"\x00\x00org = acme\x00app = api:r,web:rw\x00ip = 10.0.0.0/8")
    write("verify", "signed_preds_tp", b"\x03\x02org = acme\x00actions = rw\x00"
          b"valid 2026-11-01T00:00:00Z .. 2030-01-01T00:00:00Z\x00secret = API_KEY,DB_*")
    write("verify", "signed_denied", b"\x00\x00resource = apps,tokens\x00app = api:r")

    caveats = [
        "org = acme",
        "app = api:r,web:rw",
        "app = web:rwcdxv",
        "actions = rwcdxv",
        "expires < 2026-12-01T00:00:00Z",
        "not-before >= 2026-11-01T00:00:00Z",
        "valid 2026-11-01T00:00:00Z .. 2026-12-01T00:00:00Z",
        "secret = API_KEY,DB_*",
        "secret = *",
        "resource = apps,audit,keys,orgs,secrets,tokens",
        "ip = 10.0.0.0/8",
        "ip = 10.0.0.0/8,::ffff:0.0.0.0/96,2001:db8::/32",
    ]
    for i, c in enumerate(caveats):
        write("caveat_decode", f"{i:02}_{c.split(' ')[0]}", c)


if __name__ == "__main__":
    main()
