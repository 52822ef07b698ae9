"""The deployed stack end to end, on the emulator's CloudFormation with IAM enforced (ministack
AUTH=true: each function runs with its own role's session credentials, and every call it makes is
checked against that role's policies).

Path: deploy (CREATE) -> settings through the HTTP API -> a signed Stripe webhook through API Gateway to
stripe-webhook, the events queue, webhook-worker through its event source mapping -> the record read back
through the API -> a Piano webhook fanned out to a legacy endpoint on loopback by piano-forwarder -> a
public route -> every admin route's sample through the API -> a poison message ending in the dead-letter
queue -> an update of the stack (a parameter changed) -> UPDATE_COMPLETE.

Then IAM: a call a function's role refused fails the run, naming the function and the action; an action a
policy grants that the function never used during the run is reported (the run cannot exercise every
path, so this is a report, not a failure). Prints PASS/FAIL per check; exits 1 on any FAIL.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
from botocore.config import Config

import deploy
import template as tpl

ROOT = Path(__file__).resolve().parents[2]
STACK = "crm-e2e"
BUCKET = "crm-e2e-artifacts"
JWT_SECRET = "e2e-piano-jwt-secret-0123456789abcdef"
# The reader of events/piano-webhook/access-granted.json (its data, decrypted).
PIANO_UID = "PNIdemo0001"
PIANO_EMAIL = "ada.reader@example.com"
# Non-envelope body: webhook-worker reports it failed on every receive until the redrive moves it.
POISON = '{"poison": "not an events-queue envelope"}'


class Checks:
    def __init__(self):
        self.failed = []

    def check(self, ok, what):
        print(f"  {'PASS' if ok else 'FAIL'} {what}", flush=True)
        if not ok:
            self.failed.append(what)
        return ok


def clients(endpoint):
    config = Config(retries={"max_attempts": 2}, read_timeout=120)
    make = lambda service: boto3.client(  # noqa: E731
        service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
        aws_secret_access_key="test", config=config)
    names = ("s3", "cloudformation", "apigatewayv2", "lambda", "sqs", "secretsmanager", "logs", "cloudtrail", "iam")
    return {name: make(name) for name in names}


def request(base, method, path, body=None, headers=None, timeout=60):
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def wait_for(probe, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    return None


def sample_event(function, name):
    return json.loads((ROOT / "events" / function / name).read_text())


def stripe_signature(body, secret, t):
    mac = hmac.new(secret.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def hs256(claims, secret):
    enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    head = enc(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = enc(json.dumps(claims).encode())
    mac = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{enc(mac)}"


class LegacyEndpoint:
    """A publication's legacy Piano webhook receiver, on loopback: records what it is sent."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def _record(self):
                length = int(self.headers.get("content-length") or 0)
                received.append((self.command, self.path, self.rfile.read(length).decode()))
                self.send_response(200)
                self.end_headers()

            do_GET = do_POST = _record

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/piano-hook"


def zips_from(directory, binaries):
    """{binary: zip bytes}: cargo lambda's `<binary>/bootstrap.zip`, or a zip made here of the binary
    itself (the test build's), stripped of its symbols first as a release build is (half the bytes to
    compress, upload and unpack). zlib lets the threads compress on every core."""
    def one(binary):
        built = Path(directory) / binary
        zipped = Path(directory) / binary / "bootstrap.zip"
        if zipped.is_file():
            return binary, zipped.read_bytes()
        if not built.is_file():
            raise SystemExit(f"{binary}: neither {built} nor {zipped} exists; build the functions first")
        with tempfile.TemporaryDirectory() as scratch:
            stripped = Path(scratch) / "bootstrap"
            if subprocess.run(["strip", "-o", str(stripped), str(built)], capture_output=True).returncode != 0:
                stripped = built
            return binary, deploy.zip_bootstrap(stripped)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return dict(pool.map(one, binaries))


def log_lines(aws, group):
    lines, token = [], None
    while True:
        kwargs = {"logGroupName": group, **({"nextToken": token} if token else {})}
        try:
            page = aws["logs"].filter_log_events(**kwargs)
        except aws["logs"].exceptions.ResourceNotFoundException:
            return lines
        lines += [e["message"] for e in page["events"]]
        token = page.get("nextToken")
        if not token:
            return lines


class Run:
    def __init__(self, args):
        self.args, self.aws, self.checks = args, clients(args.endpoint), Checks()
        self.source = tpl.load(ROOT / "template.yaml")
        self.binaries = sorted({b for _, b in tpl.functions(self.source)})

    def deploy(self, parameters):
        return deploy.deploy(self.aws, ROOT / "template.yaml", STACK, BUCKET, self.zips, parameters,
                             lambda text: print(f"  {text}", flush=True))

    def admin(self, method, path, payload=None):
        headers = {"authorization": f"Bearer {self.token}"}
        body = None
        if payload is not None:
            headers["content-type"] = "application/json"
            body = json.dumps(payload)
        return request(self.base, method, path, body, headers)


def step_deploy(run):
    print("== deploy through CloudFormation (SAM transform, IAM enforced)", flush=True)
    run.zips = zips_from(run.args.zips, run.binaries)
    started = time.monotonic()
    run.outputs = run.deploy({"LogRetentionDays": "30"})
    run.checks.check(True, f"CREATE_COMPLETE with {len(run.zips)} function zips in {time.monotonic() - started:.1f} s")
    resources = deploy.physical_ids(run.aws["cloudformation"], STACK)
    run.resources = resources
    functions = [logical for logical, _ in tpl.functions(run.source)]
    run.checks.check(all(resources.get(f, {}).get("ResourceStatus") == "CREATE_COMPLETE" for f in functions),
                     f"all {len(functions)} functions created")
    api_id = next(r["PhysicalResourceId"] for r in resources.values() if r["ResourceType"] == "AWS::ApiGatewayV2::Api")
    run.base = f"{run.args.endpoint}/_aws/execute-api/{api_id}/$default"
    secret = run.aws["secretsmanager"].get_secret_value(SecretId=run.outputs["OperatorTokenSecretArn"])
    run.token = secret["SecretString"]
    run.checks.check(len(run.token) >= 32, "operator token generated by the template in Secrets Manager")
    run.events_url, run.dlq_url = run.outputs["EventsQueueUrl"], run.outputs["EventsDeadLetterQueueUrl"]
    # Test speed, not an emulator gap: 5 receives x 180 s would take 15 minutes before the redrive.
    run.aws["sqs"].set_queue_attributes(QueueUrl=run.events_url, Attributes={"VisibilityTimeout": "3"})


def step_settings(run):
    print("== settings through the HTTP API", flush=True)
    settings = json.loads(sample_event("settings-put", "put-settings.json")["body"])
    run.publication = sample_event("settings-put", "put-settings.json")["rawPath"].rsplit("/", 1)[1]
    run.legacy = LegacyEndpoint()
    settings["piano"]["legacyWebhookUrls"] = [run.legacy.url]
    settings["piano"]["jwtSecret"] = JWT_SECRET
    run.settings = settings
    # First with a second origin, then without it: replacing settings deletes the dropped origin's index
    # item in the same transaction, the path that needs dynamodb:DeleteItem.
    wider = dict(settings, origins=settings["origins"] + ["https://old-site.example.com"])
    status, body = run.admin("PUT", f"/admin/publications/{run.publication}", wider)
    run.checks.check(status == 201, f"PUT settings (settings-put): {status} {body if status >= 300 else ''}")
    status, body = run.admin("PUT", f"/admin/publications/{run.publication}", settings)
    run.checks.check(status == 200, f"PUT settings dropping an origin (settings-put): {status} {body if status >= 300 else ''}")
    status, body = run.admin("GET", f"/admin/publications/{run.publication}")
    secret = settings["stripeAccounts"][0]["webhookSecrets"][0]
    run.checks.check(status == 200 and secret not in json.dumps(body), f"GET settings (settings-get): {status}, secrets masked")
    status, _ = request(run.base, "GET", f"/admin/publications/{run.publication}", headers={"authorization": "Bearer wrong-token-0123456789abcdef"})
    run.checks.check(status == 401, f"a wrong operator token refused: {status}")


def step_stripe(run):
    print("== a signed Stripe webhook through stripe-webhook, SQS and webhook-worker", flush=True)
    event = json.loads((ROOT / "events/stripe-webhook/story/03-customer-created.json").read_text())
    event = json.loads(event["body"]) if "body" in event else event
    stamp = int(time.time())
    # The Piano sample's reader. The publication's checkout named their Piano uid in the customer's
    # metadata: the evidence that joins the Piano event below to this record (step_public lists it).
    email = PIANO_EMAIL
    event["id"] = f"evt_e2e_{stamp}"
    event["created"] = stamp - 2 * 86400  # not live: applying it queues no automatic catch-up
    event["data"]["object"]["id"] = run.stripe_customer = f"cus_e2e{stamp}"
    event["data"]["object"]["email"] = email
    event["data"]["object"]["metadata"] = {"piano_uid": PIANO_UID}
    body = json.dumps(event, separators=(",", ":"))
    secret = run.settings["stripeAccounts"][0]["webhookSecrets"][0]
    key = run.settings["stripeAccounts"][0]["key"]
    headers = {"content-type": "application/json", "stripe-signature": stripe_signature(body, secret, int(time.time()))}
    status, answer = request(run.base, "POST", f"/webhooks/stripe/{run.publication}/{key}", body, headers)
    run.checks.check(status == 200, f"signed event accepted: {status} {answer if status != 200 else ''}")
    headers["stripe-signature"] = stripe_signature(body, "whsec_wrong", int(time.time()))
    status, _ = request(run.base, "POST", f"/webhooks/stripe/{run.publication}/{key}", body, headers)
    run.checks.check(status == 400, f"an event signed with another secret refused: {status}")

    def found():
        status, page = run.admin("GET", f"/admin/publications/{run.publication}/customers?email={email}")
        items = page.get("data", []) if isinstance(page, dict) else []
        return items if status == 200 and items else None

    items = wait_for(found, 90)
    run.checks.check(bool(items), f"the customer applied by webhook-worker and listed (customers-list): {email}")
    if items:
        customer = items[0].get("id") or items[0].get("customerId")
        status, record = run.admin("GET", f"/admin/publications/{run.publication}/customers/{customer}")
        run.checks.check(status == 200 and email in json.dumps(record), f"the record read back (customers-get): {status}")


def step_piano(run):
    print("== a Piano webhook through piano-webhook, fanned out by piano-forwarder", flush=True)
    sample = sample_event("piano-webhook", "access-granted.json")
    query = sample.get("rawQueryString", "")
    status, answer = request(run.base, "GET", f"/webhooks/piano/{run.publication}?{query}")
    run.checks.check(status == 200, f"Piano webhook accepted: {status} {answer if status != 200 else ''}")
    got = wait_for(lambda: run.legacy.received, 60)
    run.checks.check(bool(got), f"the legacy endpoint on loopback received it: {got[0][0] + ' ' + got[0][1][:60] if got else 'nothing'}")
    run.piano_uid = PIANO_UID


def step_public(run):
    print("== a public route", flush=True)
    origin = run.settings["origins"][0]

    def subscriptions(uid):
        token = hs256({"aud": run.settings["piano"]["aid"], "sub": uid, "exp": int(time.time()) + 600}, JWT_SECRET)
        return request(run.base, "GET", f"/api/subscriptions?token={token}", headers={"origin": origin})

    # The reader of the Piano sample, whom the Piano event just applied made a customer.
    uid = run.piano_uid
    answer = wait_for(lambda: (lambda a: a if a[0] == 200 else None)(subscriptions(uid)), 60)
    status, body = answer or subscriptions(uid)
    listed = body.get("subscriptions", []) if isinstance(body, dict) else []
    run.checks.check(status == 200 and len(listed) == 1 and listed[0].get("customer") == run.stripe_customer,
                     f"GET /api/subscriptions (subscriptions-list) for the Piano reader {uid}: {status}, "
                     f"{len(listed)} subscription of {run.stripe_customer} from Stripe")
    asked = json.loads(urllib.request.urlopen(run.args.stripe + "/__requests", timeout=10).read())
    secret_key = run.settings["stripeAccounts"][0]["secretKey"]
    run.checks.check(any(a["path"] == "/v1/subscriptions" and a["query"].get("customer") == [run.stripe_customer]
                         and a["authorization"] == f"Bearer {secret_key}" for a in asked),
                     "Stripe was asked for that customer's subscriptions with the account's secret key")
    # A reader unknown here is asked of Piano (their first visit); Piano is a closed port in this run.
    status, body = subscriptions("PNIunknown0001")
    run.checks.check(status == 503 and body == {"error": "service temporarily unavailable, retry"},
                     f"a reader unknown here, Piano unreachable: {status} {body}")
    token = hs256({"aud": run.settings["piano"]["aid"], "sub": uid, "exp": int(time.time()) + 600}, "another-secret")
    status, body = request(run.base, "GET", f"/api/subscriptions?token={token}", headers={"origin": origin})
    run.checks.check(status == 401, f"a token signed with another secret refused: {status} {body}")


def step_samples(run):
    print("== every admin route's sample through the API", flush=True)
    # The admin functions: those the template gives the operator token.
    admin = [binary for logical, binary in tpl.functions(run.source)
             if "CRM_ADMIN_TOKEN_SECRET_ARN" in run.source["Resources"][logical]["Properties"]
             .get("Environment", {}).get("Variables", {})]
    done = set()
    for binary in admin:
        for sample in sorted((ROOT / "events" / binary).glob("*.json")):
            event = json.loads(sample.read_text())
            method = event["requestContext"]["http"]["method"]
            path = event["rawPath"] + (f"?{event['rawQueryString']}" if event.get("rawQueryString") else "")
            path = re.sub(r"^/admin/publications/[^/]+", f"/admin/publications/{run.publication}", path)
            body = event.get("body")
            if body and event.get("isBase64Encoded"):
                body = base64.b64decode(body)
            headers = {"authorization": f"Bearer {run.token}"}
            if body:
                headers["content-type"] = "application/json"
            if binary == "settings-put":
                body = json.dumps(run.settings)
            status, answer = request(run.base, method, path, body, headers)
            # An answer of the function's own: a body, and for an error {"error": ...}; a crash or an
            # init failure comes back from the runtime as {"errorMessage": ...}.
            own = status < 400 or (isinstance(answer, dict) and "error" in answer)
            own = own and not (isinstance(answer, dict) and "errorMessage" in answer)
            run.checks.check(own and status != 500, f"{binary} {sample.name}: {status} {answer if status >= 400 else ''}"[:300])
            done.add(binary)
    run.exercised = done | {"stripe-webhook", "webhook-worker", "piano-webhook", "piano-forwarder", "subscriptions-list"}
    missing = sorted(b for b in admin if b not in done)
    run.checks.check(not missing, f"every admin function answered through the API{': missing ' + ', '.join(missing) if missing else ''}")


def step_poison(run):
    print("== a poison message until the dead-letter queue", flush=True)
    run.aws["sqs"].send_message(QueueUrl=run.events_url, MessageBody=POISON)

    def dead():
        attrs = run.aws["sqs"].get_queue_attributes(QueueUrl=run.dlq_url, AttributeNames=["ApproximateNumberOfMessages"])
        return int(attrs["Attributes"]["ApproximateNumberOfMessages"]) >= 1

    run.checks.check(bool(wait_for(dead, 120)), "the poison message moved to the events dead-letter queue")
    status, health = run.admin("GET", f"/admin/publications/{run.publication}/sync")
    depths = {d.get("queue"): d.get("depth") for d in health.get("dlq", [])} if isinstance(health, dict) else {}
    events_depth = next((depth for queue, depth in depths.items() if queue and "events" in queue), None)
    run.checks.check(status == 200 and events_depth == 1,
                     f"sync health (sync-health) reports the events dead-letter queue at depth {events_depth}: {depths}")


def step_update(run):
    print("== update: a parameter changed, deployed again", flush=True)
    started = time.monotonic()
    run.deploy({"LogRetentionDays": "14"})
    cfn = run.aws["cloudformation"]
    status = cfn.describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"]
    run.checks.check(status == "UPDATE_COMPLETE", f"{status} in {time.monotonic() - started:.1f} s")
    group = run.resources["SettingsGetLogGroup"]["PhysicalResourceId"]
    groups = run.aws["logs"].describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    retention = groups[0].get("retentionInDays") if groups else None
    run.checks.check(retention == 14, f"log retention now {retention} days ({group})")
    status, _ = run.admin("GET", f"/admin/publications/{run.publication}")
    run.checks.check(status == 200, f"the API still answers after the update: {status}")


def policy_actions(aws, role_name):
    actions = set()
    iam = aws["iam"]
    for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
        document = json.loads(document) if isinstance(document, str) else document
        for statement in document.get("Statement", []):
            listed = statement.get("Action", [])
            actions |= set([listed] if isinstance(listed, str) else listed)
    return actions


def session_key(function_arn, role_arn):
    # The access key ministack gives a function's execution-role session (core/lambda_runtime.py,
    # execution_credentials): the CloudTrail events of that key are the function's own calls.
    return "ASIA" + hashlib.sha256(f"{function_arn}:{role_arn}".encode()).hexdigest()[:16].upper()


def used_actions(aws, key, granted):
    used = set()
    trail = aws["cloudtrail"]
    for action in sorted(granted):
        service, name = action.split(":", 1)
        found = trail.lookup_events(LookupAttributes=[{"AttributeKey": "AccessKeyId", "AttributeValue": key},
                                                      {"AttributeKey": "EventName", "AttributeValue": name}], MaxResults=1)
        if found["Events"]:
            used.add(action)
    if any(a in granted for a in ("dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem")):
        found = trail.lookup_events(LookupAttributes=[{"AttributeKey": "AccessKeyId", "AttributeValue": key},
                                                      {"AttributeKey": "EventName", "AttributeValue": "TransactWriteItems"}], MaxResults=50)
        for event in found["Events"]:
            text = event.get("CloudTrailEvent", "")
            for kind, action in (('"Put"', "dynamodb:PutItem"), ('"Delete"', "dynamodb:DeleteItem"),
                                 ('"ConditionCheck"', "dynamodb:ConditionCheckItem")):
                if kind in text:
                    used.add(action)
    return used


def step_iam(run):
    print("== IAM: refused calls, and grants never used", flush=True)
    denied = []
    for logical, binary in tpl.functions(run.source):
        name = run.resources[logical]["PhysicalResourceId"]
        for line in log_lines(run.aws, f"/aws/lambda/{name}"):
            if re.search(r"AccessDenied|not authorized to perform", line):
                action = re.search(r"perform: ([a-z0-9-]+:[A-Za-z]+)", line)
                denied.append(f"{logical} ({binary}): {action.group(1) if action else line[:200]}")
    names = {run.resources[logical]["PhysicalResourceId"]: (logical, binary) for logical, binary in tpl.functions(run.source)}
    if run.args.emulator_log:
        # A refusal during init (the operator token's secret) ends the process before it logs a line of
        # its own; the emulator's log names the function and the error.
        for line in Path(run.args.emulator_log).read_text(errors="replace").splitlines():
            found = re.search(r"error for (\S+): .*?(AccessDenied\w*|not authorized to perform: \S+)", line)
            if found and found.group(1) in names:
                logical, binary = names[found.group(1)]
                denied.append(f"{logical} ({binary}): {found.group(2)}")
    for entry in sorted(set(denied)):
        run.checks.check(False, f"IAM refused a call of {entry}")
    if not denied:
        run.checks.check(True, "no call of any function was refused by its role")
    unused = []
    for logical, binary in tpl.functions(run.source):
        if binary not in run.exercised:
            continue
        config = run.aws["lambda"].get_function_configuration(FunctionName=run.resources[logical]["PhysicalResourceId"])
        granted = {a for a in policy_actions(run.aws, config["Role"].rsplit("/", 1)[-1]) if a.startswith(("dynamodb:", "sqs:SendMessage", "sqs:GetQueueAttributes", "secretsmanager:"))}
        used = used_actions(run.aws, session_key(config["FunctionArn"], config["Role"]), granted)
        if granted - used:
            unused.append(f"{logical}: {', '.join(sorted(granted - used))}")
    print("  report: granted and not used during this run (paths the run does not take may use them):")
    for line in unused or ["(none)"]:
        print(f"    {line}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--zips", required=True, help="directory with <binary> executables or <binary>/bootstrap.zip")
    parser.add_argument("--stripe", required=True, help="the fake Stripe's base URL the functions call")
    parser.add_argument("--emulator-log", help="the emulator's log, searched for refusals during a function's init")
    args = parser.parse_args()
    run = Run(args)
    started = time.monotonic()
    for step in (step_deploy, step_settings, step_stripe, step_piano, step_public, step_samples, step_poison,
                 step_update, step_iam):
        step_started = time.monotonic()
        try:
            step(run)
            print(f"  ({step.__name__}: {time.monotonic() - step_started:.1f} s)", flush=True)
        except SystemExit as stop:
            run.checks.check(False, f"{step.__name__}: {stop}")
            break
        except Exception as error:  # noqa: BLE001 - a crash of a step is a failed check, with its cause
            import traceback

            traceback.print_exc()
            run.checks.check(False, f"{step.__name__}: {type(error).__name__}: {error}")
            break
    failed = run.checks.failed
    print(f"\n{'FAILED' if failed else 'passed'}: {len(failed)} failed checks, {time.monotonic() - started:.0f} s")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
