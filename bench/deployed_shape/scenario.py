"""Deploys the cargo-lambda zips on the ministack emulator as template.yaml describes them, then drives
the deployed shape end to end; run by bench/deployed-shape, which starts the emulator and builds.

Everything deployed is read from template.yaml (table, queues and their redrive policies, functions
with their environment, HTTP API routes, SQS event source mappings), so the emulator runs what the
template says rather than a copy of it. The scenario: settings PUT through the HTTP API (settings-api),
signed Stripe events POSTed to stripe-webhook, a poison message on the events queue, webhook-worker
fed by the event source mapping with partial batch responses, then the records read back through
customers-api and compared with what was sent. Prints PASS/FAIL lines and a summary; exits 1 on a
failure.
"""


import argparse
import hashlib
import hmac
import json
import re
import statistics
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import emulator_deploy
import template_stack
from template_stack import Stack, function_config

PUBLICATION = "deployed-shape"
ACCOUNT_KEY = "main"
WEBHOOK_SECRET = "whsec_deployedShape0123456789abcdef"
ADMIN_TOKEN = "deployed-shape-operator-token-0123456789"
# The functions the scenario drives; the others are only started (checked to initialise).
SCENARIO = ("settings-api", "stripe-webhook", "webhook-worker", "customers-api")
# Non-envelope body: webhook-worker reports it as failed on every receive until the redrive moves it.
POISON = '{"poison": "not an events-queue envelope"}'

# ---- HTTP through the API -----------------------------------------------------------------------


def request(base_url, method, path, body=None, headers=None):
    """(status, parsed JSON or text, seconds) of one request through the HTTP API."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(base_url + path, data=data, method=method, headers=headers or {})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    elapsed = time.monotonic() - started
    try:
        return status, json.loads(text), elapsed
    except json.JSONDecodeError:
        return status, text, elapsed


def admin(base_url, method, path, payload=None):
    headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    body = None
    if payload is not None:
        headers["content-type"] = "application/json"
        body = json.dumps(payload)
    return request(base_url, method, path, body, headers)


def stripe_signature(body, secret, t):
    """Stripe's scheme (what shared::stripe::signature checks): v1 = HMAC-SHA256 of "{t}.{body}"."""
    mac = hmac.new(secret.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def customer_events(sample, count, updated, created_at):
    """`count` customer.created events and `updated` customer.updated ones (a new name, a minute later),
    from the story's sample event; answers the events and the records expected."""
    events, expected = [], {}
    for i in range(count):
        stripe_id = f"cus_shape{i:04d}"
        customer = dict(sample["data"]["object"])
        customer.update(id=stripe_id, email=f"reader{i:04d}@shape.example.com", name=f"Reader {i:04d}", created=created_at)
        events.append(dict(sample, id=f"evt_shape_created_{i:04d}", type="customer.created", created=created_at, data={"object": customer}))
        expected[stripe_id] = {"email": customer["email"], "name": customer["name"]}
    for i in range(updated):
        stripe_id = f"cus_shape{i:04d}"
        customer = dict(events[i]["data"]["object"], name=f"Renamed Reader {i:04d}")
        events.append(
            dict(
                sample,
                id=f"evt_shape_updated_{i:04d}",
                type="customer.updated",
                created=created_at + 60,
                data={"object": customer, "previous_attributes": {"name": events[i]["data"]["object"]["name"]}},
            )
        )
        expected[stripe_id]["name"] = customer["name"]
    return events, expected


# ---- checks -------------------------------------------------------------------------------------


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what):
        print(f"{'PASS' if ok else 'FAIL'}  {what}", flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        return ok


def queue_depth(aws, url):
    attrs = aws["sqs"].get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


def function_log(aws, name):
    """Every line the emulator logged for a function (its output and START/END/REPORT), in time order."""
    group = f"/aws/lambda/{name}"
    events, token = [], None
    while True:
        kwargs = {"logGroupName": group}
        if token:
            kwargs["nextToken"] = token
        try:
            page = aws["logs"].filter_log_events(**kwargs)
        except aws["logs"].exceptions.ResourceNotFoundException:
            return []
        events.extend(page["events"])
        token = page.get("nextToken")
        if not token:
            break
    events.sort(key=lambda e: (e["timestamp"], e.get("ingestionTime", 0)))
    return [e["message"] for e in events]


def json_lines(lines):
    for line in lines:
        for part in line.splitlines():
            if part.startswith("{"):
                try:
                    yield json.loads(part)
                except json.JSONDecodeError:
                    continue


def durations(lines):
    return [int(m.group(1)) for m in (re.search(r"REPORT RequestId: \S+\tDuration: (\d+) ms", l) for l in lines) if m]


class Run:
    """What the steps share: the emulator's clients, the deployment, the checks, the timings."""

    def __init__(self, args):
        self.args = args
        self.stack = Stack(template_stack.load(args.template), {"AdminToken": ADMIN_TOKEN, "PublicBaseUrl": ""})
        self.aws = emulator_deploy.clients(args.endpoint)
        self.checks = Checks()
        self.http_times = {}
        self.events, self.expected, self.poison_id = [], {}, None

    def call(self, function, method, path, payload=None):
        status, body, secs = admin(self.base_url, method, path, payload)
        self.http_times.setdefault(function, []).append(secs)
        return status, body, secs


def log(text):
    print(f"  {text}", flush=True)


def deploy_step(run):
    print("== deploy (from template.yaml)", flush=True)
    args, stack = run.args, run.stack
    zips = {name: Path(args.zips) / name / "bootstrap.zip" for name in args.functions.split()}
    started = time.monotonic()
    run.base_url, run.functions, run.mappings = emulator_deploy.deploy(
        stack, run.aws, zips, args.endpoint, {"EventsQueue": args.visibility}, log
    )
    in_template = [function_config(stack, l)["binary"] for l, _ in stack.of_type("AWS::Serverless::Function")]
    run.checks.check(
        sorted(run.functions) == sorted(zips) and set(zips) <= set(in_template),
        f"{len(run.functions)} of the template's {len(in_template)} functions deployed from cargo-lambda zips",
    )
    log(f"deployed in {time.monotonic() - started:.1f} s")
    run.events_url, run.dlq_url = stack.refs["EventsQueue"], stack.refs["EventsDeadLetterQueue"]
    run.max_receives = stack.resources["EventsQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"]


def settings_step(run):
    print("== settings through settings-api", flush=True)
    settings = {
        "name": "Deployed Shape Daily",
        "origins": ["https://www.shape.example.com"],
        "stripeAccounts": [
            {
                "key": ACCOUNT_KEY,
                "name": "Shape Media Ltd",
                "secretKey": "sk_test_deployedshape0123456789",
                "webhookSecrets": [WEBHOOK_SECRET],
            }
        ],
    }
    status, _, secs = run.call("settings-api", "PUT", f"/admin/publications/{PUBLICATION}", settings)
    run.checks.check(status == 201, f"PUT settings: {status} (created; {secs * 1000:.0f} ms, the function's cold start)")
    status, body, _ = run.call("settings-api", "GET", f"/admin/publications/{PUBLICATION}")
    masked = isinstance(body, dict) and WEBHOOK_SECRET not in json.dumps(body)
    run.checks.check(
        status == 200 and masked and body.get("name") == settings["name"],
        f"GET settings: {status}, name read back, secrets masked",
    )


def webhooks_step(run):
    print("== Stripe events through stripe-webhook, a poison message on the events queue", flush=True)
    sample = json.loads(Path(run.args.sample).read_text())
    # Two days old: not live, so applying them queues no automatic catch-up (which would call Stripe).
    created_at = int(time.time()) - 2 * 86400
    run.events, run.expected = customer_events(sample, run.args.customers, run.args.updated, created_at)
    run.poison_id = run.aws["sqs"].send_message(QueueUrl=run.events_url, MessageBody=POISON)["MessageId"]
    path = f"/webhooks/stripe/{PUBLICATION}/{ACCOUNT_KEY}"
    accepted = 0
    for event in run.events:
        body = json.dumps(event, separators=(",", ":"))
        headers = {
            "content-type": "application/json; charset=utf-8",
            "stripe-signature": stripe_signature(body, WEBHOOK_SECRET, int(time.time())),
        }
        status, _, secs = request(run.base_url, "POST", path, body, headers)
        run.http_times.setdefault("stripe-webhook", []).append(secs)
        accepted += status == 200
    run.checks.check(accepted == len(run.events), f"{accepted} of {len(run.events)} signed events accepted (200)")
    forged = json.dumps(dict(run.events[0], id="evt_shape_forged"))
    headers = {"content-type": "application/json", "stripe-signature": stripe_signature(forged, "whsec_wrong", int(time.time()))}
    status, _, _ = request(run.base_url, "POST", path, forged, headers)
    run.checks.check(status == 400, f"an event signed with another secret refused: {status}")
    visible, _ = queue_depth(run.aws, run.events_url)
    run.checks.check(
        visible == len(run.events) + 1, f"events queue holds {visible} messages ({len(run.events)} events + the poison)"
    )


def worker_step(run):
    print("== webhook-worker through the event source mapping", flush=True)
    aws, checks, n = run.aws, run.checks, len(run.events)
    started = time.monotonic()
    aws["lambda"].update_event_source_mapping(UUID=run.mappings["EventsQueue"], Enabled=True)
    settled = None
    while time.monotonic() - started < run.args.wait:
        visible, in_flight = queue_depth(aws, run.events_url)
        dead, _ = queue_depth(aws, run.dlq_url)
        if visible == 0 and in_flight == 0 and dead >= 1:
            settled = time.monotonic() - started
            break
        time.sleep(0.5)
    checks.check(settled is not None, f"events queue drained and the poison dead-lettered ({settled or run.args.wait:.1f} s)")
    # Before the dead-letter queue is read below (a received message no longer counts in its depth).
    status, health, _ = run.call("customers-api", "GET", f"/admin/publications/{PUBLICATION}/sync")
    health = health if status == 200 else {}
    depths = {d.get("queue"): d.get("depth") for d in health.get("dlq", [])}
    applied = sum((s.get("last24h") or {}).get("applied", 0) for s in health.get("sources", []))
    checks.check(
        depths.get("events-dlq") == 1 and applied == n,
        f"sync health (customers-api): {status}, events-dlq depth {depths.get('events-dlq')}, {applied} applied in 24 h",
    )
    dead = aws["sqs"].receive_message(QueueUrl=run.dlq_url, MaxNumberOfMessages=10).get("Messages", [])
    checks.check(
        [m["Body"] for m in dead] == [POISON], f"dead-letter queue holds exactly the poison message ({len(dead)} message(s))"
    )

    worker = list(json_lines(function_log(aws, "webhook-worker")))
    outcomes = {}
    for line in worker:
        if line.get("message") == "event processed":
            outcomes[line.get("outcome")] = outcomes.get(line.get("outcome"), 0) + 1
    poison_attempts = sum(
        1 for line in worker if line.get("level") == "ERROR" and (line.get("span") or {}).get("message_id") == run.poison_id
    )
    checks.check(outcomes.get("Applied", 0) == n and len(outcomes) == 1, f"each event applied once: {outcomes} for {n} events")
    checks.check(
        poison_attempts == run.max_receives,
        f"the poison failed {poison_attempts} times (maxReceiveCount {run.max_receives}) before the redrive",
    )
    batches = re.findall(
        r"ESM: Lambda webhook-worker processed (\d+) SQS messages from \S+(?: \((\d+) partial failures\))?",
        Path(run.args.emulator_log).read_text(errors="replace"),
    )
    mixed = [int(ok) for ok, failed in batches if failed and int(ok) > 0]
    deleted = sum(int(ok) for ok, _ in batches)
    checks.check(bool(mixed), f"the poison shared a batch with events the mapping deleted ({mixed} others in its batches)")
    checks.check(deleted == n, f"the mapping deleted {deleted} messages over {len(batches)} batches: the {n} events, none twice")


def records_step(run):
    print("== records read back through customers-api", flush=True)
    checks, expected = run.checks, run.expected
    listed, cursor, pages = [], None, 0
    while True:
        query = "?limit=15" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
        status, body, _ = run.call("customers-api", "GET", f"/admin/publications/{PUBLICATION}/customers{query}")
        if status != 200:
            checks.check(False, f"GET customers page {pages + 1}: {status} {body}")
            break
        pages += 1
        listed.extend(body["data"])
        cursor = body.get("next")
        if not cursor:
            break
    checks.check(len(listed) == len(expected), f"the listing has {len(listed)} customers over {pages} pages, {len(expected)} sent")
    mismatches = []
    for summary in listed:
        status, record, _ = run.call("customers-api", "GET", f"/admin/publications/{PUBLICATION}/customers/{summary['id']}")
        stripe_id = (record.get("stripeCustomerIds") or {}).get(ACCOUNT_KEY) if status == 200 else None
        got = {"email": record.get("email"), "name": record.get("name")} if status == 200 else None
        if got is None or got != expected.get(stripe_id):
            mismatches.append((summary.get("id"), stripe_id, got, expected.get(stripe_id)))
    checks.check(
        not mismatches and len(listed) == len(expected),
        f"{len(listed) - len(mismatches)} of {len(expected)} records equal what was sent "
        f"(email, name after {run.args.updated} renames, Stripe id)",
    )
    for m in mismatches[:5]:
        log(f"mismatch: {m}")
    query = "?email=reader0000%40shape.example.com"
    status, body, _ = run.call("customers-api", "GET", f"/admin/publications/{PUBLICATION}/customers{query}")
    found = body.get("data", []) if status == 200 else []
    checks.check(
        len(found) == 1 and found[0].get("name") == expected["cus_shape0000"]["name"],
        f"lookup by email through the GSI: {status}, {len(found)} found",
    )


def others_step(run):
    print("== the other functions start with the template's environment", flush=True)
    for name, deployed in run.functions.items():
        if name in SCENARIO:
            continue
        if deployed["queues"]:
            # An empty batch: init (configuration, store and queue clients) runs, then nothing fails.
            answer = run.aws["lambda"].invoke(FunctionName=name, Payload=json.dumps({"Records": []}).encode())
            payload = json.loads(answer["Payload"].read() or b"null")
            ok = "FunctionError" not in answer and isinstance(payload, dict) and payload.get("batchItemFailures") == []
            run.checks.check(ok, f"{name}: an empty SQS batch answered {payload}")
            continue
        method, path = next((m, p) for m, p in deployed["routes"] if m != "OPTIONS")
        path = re.sub(r"\{[^}]+\}", "x", path.replace("{publicationId}", PUBLICATION))
        # Unauthenticated: the function's own refusal (4xx) shows it started; 5xx would be init failing.
        body = b"" if method in ("POST", "PUT", "PATCH", "DELETE") else None
        status, answer, _ = request(run.base_url, method, path, body)
        run.checks.check(400 <= status < 500, f"{name}: {method} {path} answered {status} {json.dumps(answer)[:80]}")


def report_step(run):
    print("== invocations as the emulator saw them", flush=True)
    spawned = {}
    emulator_log = Path(run.args.emulator_log).read_text(errors="replace")
    for name in re.findall(r"Lambda provided-runtime environment spawned for (\S+) \(cold start\)", emulator_log):
        spawned[name] = spawned.get(name, 0) + 1
    print("| function | invocations | environments started (cold) | first invocation (ms) | median of the others (ms) |")
    print("|---|---:|---:|---:|---:|")
    for name in run.functions:
        d = durations(function_log(run.aws, name))
        rest = f"{statistics.median(d[1:]):.0f}" if len(d) > 1 else "n/a"
        print(f"| {name} | {len(d)} | {spawned.get(name, 0)} | {d[0] if d else 'n/a'} | {rest} |")
    for name, times in run.http_times.items():
        ms = [t * 1000 for t in times]
        log(f"{name} through the HTTP API, client side: first {ms[0]:.0f} ms, median {statistics.median(ms):.0f} ms over {len(ms)}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--template", required=True)
    parser.add_argument("--zips", required=True, help="cargo lambda's lambda dir: <function>/bootstrap.zip")
    parser.add_argument("--functions", required=True, help="the functions built, space-separated")
    parser.add_argument("--sample", required=True, help="a Stripe customer.created event")
    parser.add_argument("--emulator-log", required=True)
    parser.add_argument("--customers", type=int, default=40)
    parser.add_argument("--updated", type=int, default=10)
    parser.add_argument("--visibility", type=int, default=2, help="events queue visibility timeout, seconds")
    parser.add_argument("--wait", type=int, default=240, help="seconds to wait for the queue to settle")
    run = Run(parser.parse_args())
    for step in (deploy_step, settings_step, webhooks_step, worker_step, records_step, others_step, report_step):
        step(run)
    print(f"\n{run.checks.passed} passed, {run.checks.failed} failed")
    print("deployed shape: " + ("PASS" if run.checks.failed == 0 else "FAIL"))
    return 0 if run.checks.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
