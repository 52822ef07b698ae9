#!/usr/bin/env python3
"""Piano's webhook encryption, written a second time, apart from the Rust code, on the `cryptography`
package, following shared/piano/README.md (the steps Piano's SDKs take):

  data = C~~~H, where
  C    = URL-safe base64 (no `=`) of AES-256-ECB(PKCS#7(plaintext)), the AES key being the private
         key's UTF-8 bytes cut to 32 bytes or right-padded with `X`;
  H    = URL-safe base64 (no `=`) of HMAC-SHA256(key = the whole private key, message = C's text).

shared/tests/piano_vectors.rs runs it (with .ci/test's venv python, `CRM_PYTHON`) to check the Rust
code against vectors it did not make, and this script against Rust's output. Commands (JSON on stdout):

  selftest   checks Piano's SDK test vector both ways; exit status 1 if it does not hold
  generate   vectors made here: {"vectors": [{"name", "key", "plaintext", "data"}, ...]}
  decrypt    stdin {"items": [{"key", "data"}]} -> {"results": [{"plaintext", "hmac", "error"}]},
             hmac being "ok", "mismatch" or "absent" (no `~~~H` part)
  encrypt    stdin {"items": [{"key", "plaintext"}]} -> {"data": [...]}
"""

import base64
import json
import sys
from hmac import compare_digest

from cryptography.hazmat.primitives import hashes, hmac, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

SEPARATOR = "~~~"

# From Piano's SDK tests (shared/piano/README.md).
SDK_KEY = "thestringliteralisexactlyfortych"
SDK_PLAINTEXT = "JavaIsSoFun"
SDK_DATA = "V3IqZVBH2dQh4uxOMy9BAg~~~mB3lhC3FscKs7p18-N2vtvy6pSDsIyicy77lydm-UGk"


def b64_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def b64_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def aes_key(private_key: str) -> bytes:
    return private_key.encode("utf-8")[:32].ljust(32, b"X")


def hmac_of(c: str, private_key: str) -> hmac.HMAC:
    mac = hmac.HMAC(private_key.encode("utf-8"), hashes.SHA256())
    mac.update(c.encode("ascii"))
    return mac


def signature(c: str, private_key: str) -> str:
    return b64_encode(hmac_of(c, private_key).finalize())


def ecb(private_key: str) -> Cipher:
    return Cipher(algorithms.AES256(aes_key(private_key)), modes.ECB())


def cipher_text(plaintext: str, private_key: str, pkcs7: bool = True) -> str:
    raw = plaintext.encode("utf-8")
    if pkcs7:
        padder = padding.PKCS7(128).padder()
        raw = padder.update(raw) + padder.finalize()
    encryptor = ecb(private_key).encryptor()
    return b64_encode(encryptor.update(raw) + encryptor.finalize())


def encrypt(plaintext: str, private_key: str) -> str:
    c = cipher_text(plaintext, private_key)
    return c + SEPARATOR + signature(c, private_key)


def decrypt(data: str, private_key: str) -> dict:
    c, sep, h = data.rpartition(SEPARATOR)
    if not sep:
        c, h, check = data, None, "absent"
    else:
        expected = signature(c, private_key).encode("ascii")
        check = "ok" if compare_digest(expected, h.encode("utf-8")) else "mismatch"
    try:
        raw = b64_decode(c)
        decryptor = ecb(private_key).decryptor()
        plain = decryptor.update(raw) + decryptor.finalize()
    except ValueError as e:
        return {"plaintext": None, "hmac": check, "error": f"not decryptable: {e}"}
    try:
        unpadder = padding.PKCS7(128).unpadder()
        plain = unpadder.update(plain) + unpadder.finalize()
    except ValueError:
        pass  # Some senders add no padding when the length is already a multiple of 16.
    try:
        return {"plaintext": plain.decode("utf-8"), "hmac": check, "error": None}
    except UnicodeDecodeError:
        return {"plaintext": None, "hmac": check, "error": "not UTF-8"}


KEYS = {
    "1-byte key": "k",
    "short key": "short-key",
    "32-byte key": SDK_KEY,
    "33-byte key": SDK_KEY + "!",
    "long key": "a-private-key-much-longer-than-thirty-two-bytes-0123456789",
    # 31 ASCII bytes then a 2-byte character: the AES key's cut falls inside it.
    "non-ASCII key cut mid-character": "a" * 31 + "é-clé-privée",
    "short non-ASCII key": "clé-日本",
}

EVENT = json.dumps(
    {
        "version": 2,
        "type": "access_granted",
        "event": "new_purchase",
        "aid": "AidDaily01",
        "uid": "PNIreader0001",
        "rid": "RKEBOOK01",
        "term_id": "TMXYZ987",
        "user_email": "reader@example.com",
        "expires": 1767225600,
        "custom": {"sku": "978-3-16-148410-0", "note": "Grüße ✓"},
    },
    ensure_ascii=False,
)

PLAINTEXTS = {
    "empty": "",
    "15 bytes": "a" * 15,
    "16 bytes": "b" * 16,
    "17 bytes": "c" * 17,
    "event JSON": EVENT,
    "non-ASCII": "Grüße, 日本語 — ✓ {\"x\":1}",
}


def generate() -> list:
    out = []
    for key_name, key in KEYS.items():
        for text_name, text in PLAINTEXTS.items():
            c = cipher_text(text, key)
            name = f"{key_name}, {text_name}"
            out.append({"name": f"{name}, C~~~H", "key": key, "plaintext": text, "data": encrypt(text, key)})
            out.append({"name": f"{name}, C alone", "key": key, "plaintext": text, "data": c})
            padded = c + "=" * (-len(c) % 4)
            if padded != c:
                # A sender that keeps base64's padding signs the text it sends.
                out.append(
                    {
                        "name": f"{name}, C with = padding~~~H",
                        "key": key,
                        "plaintext": text,
                        "data": padded + SEPARATOR + signature(padded, key),
                    }
                )
                out.append({"name": f"{name}, C with = padding alone", "key": key, "plaintext": text, "data": padded})
        # No PKCS#7 block when the plaintext fills whole blocks (lenient senders).
        for text in ["0123456789abcdef", "x" * 32]:
            c = cipher_text(text, key, pkcs7=False)
            out.append(
                {
                    "name": f"{key_name}, {len(text)} bytes without PKCS#7, C~~~H",
                    "key": key,
                    "plaintext": text,
                    "data": c + SEPARATOR + signature(c, key),
                }
            )
    return out


def selftest() -> list:
    failures = []
    if encrypt(SDK_PLAINTEXT, SDK_KEY) != SDK_DATA:
        failures.append(f"encrypt(SDK plaintext) = {encrypt(SDK_PLAINTEXT, SDK_KEY)}, SDK says {SDK_DATA}")
    result = decrypt(SDK_DATA, SDK_KEY)
    if result != {"plaintext": SDK_PLAINTEXT, "hmac": "ok", "error": None}:
        failures.append(f"decrypt(SDK data) = {result}")
    tampered = SDK_DATA[:-1] + ("j" if SDK_DATA[-1] != "j" else "k")
    if decrypt(tampered, SDK_KEY)["hmac"] != "mismatch":
        failures.append("a tampered H passes the HMAC check")
    return failures


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "selftest":
        failures = selftest()
        json.dump({"ok": not failures, "failures": failures}, sys.stdout)
        return 1 if failures else 0
    if command == "generate":
        json.dump({"vectors": generate()}, sys.stdout)
        return 0
    if command == "decrypt":
        items = json.load(sys.stdin)["items"]
        json.dump({"results": [decrypt(i["data"], i["key"]) for i in items]}, sys.stdout)
        return 0
    if command == "encrypt":
        items = json.load(sys.stdin)["items"]
        json.dump({"data": [encrypt(i["plaintext"], i["key"]) for i in items]}, sys.stdout)
        return 0
    print(f"usage: {sys.argv[0]} selftest|generate|decrypt|encrypt", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
