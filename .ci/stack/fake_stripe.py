"""A fake of Stripe's REST API for the deployed stack's end-to-end run: Stripe's wire format (form
bodies in, JSON objects and Stripe's error shape out, Bearer secret keys), objects shaped like Stripe's
fixtures (shared/tests/data/stripe/fixtures3.json). It answers what the run's public route asks
(`GET /v1/subscriptions?customer=…`: one active subscription of that customer) and refuses the rest
with Stripe's `resource_missing` error. `GET /__requests` (not Stripe's) lists what it was asked.

Usage: fake_stripe.py PORT_FILE — listens on a free loopback port and writes the port to PORT_FILE.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(__file__).resolve().parents[2] / "shared/tests/data/stripe/fixtures3.json"
SUBSCRIPTION = json.loads(FIXTURES.read_text())["resources"]["subscription"]
asked = []


def subscription_of(customer):
    subscription = json.loads(json.dumps(SUBSCRIPTION))
    subscription.update(id=f"sub_e2e_{customer}", customer=customer, status="active", schedule=None)
    return subscription


class Stripe(BaseHTTPRequestHandler):
    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("request-id", "req_e2e")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self):
        url = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        form = parse_qs(self.rfile.read(length).decode()) if length else {}
        query = parse_qs(url.query)
        if url.path == "/__requests":
            return self.answer(200, asked)
        asked.append({"method": self.command, "path": url.path, "query": query, "form": form,
                      "authorization": self.headers.get("authorization", "")})
        if not self.headers.get("authorization", "").startswith("Bearer sk_"):
            return self.answer(401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}})
        if self.command == "GET" and url.path == "/v1/subscriptions" and query.get("customer"):
            customer = query["customer"][0]
            return self.answer(200, {"object": "list", "url": "/v1/subscriptions", "has_more": False,
                                     "data": [subscription_of(customer)]})
        self.answer(404, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                                    "message": f"Unrecognized request URL ({self.command}: {url.path})."}})

    do_GET = do_POST = do_DELETE = handle_any

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stripe)
    Path(sys.argv[1]).write_text(str(server.server_address[1]))
    server.serve_forever()
