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

import botocore.session
import yaml

REGION = "us-east-1"
STACK = "crm"
PUBLICATION = "deployed-shape"
ACCOUNT_KEY = "main"
WEBHOOK_SECRET = "whsec_deployedShape0123456789abcdef"
ADMIN_TOKEN = "deployed-shape-operator-token-0123456789"
# The functions the scenario drives; the others are only started (checked to initialise).
SCENARIO = ("settings-api", "stripe-webhook", "webhook-worker", "customers-api")
# Non-envelope body: webhook-worker reports it as failed on every receive until the redrive moves it.
POISON = '{"poison": "not an events-queue envelope"}'


# ---- template.yaml ------------------------------------------------------------------------------


class TemplateLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags (!Ref, !GetAtt, !Sub, ...) as their long forms."""


def _intrinsic(loader, suffix, node):
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


TemplateLoader.add_multi_constructor("!", _intrinsic)


class Stack:
    """The template's resources as created on the emulator: physical ids and attributes by logical id."""

    def __init__(self, template, parameters, endpoint):
        self.template = template
        self.resources = template["Resources"]
        self.parameters = parameters
        self.refs = {}
        self.arns = {}
        self.endpoint = endpoint

    def condition(self, name):
        return bool(self.resolve(self.template["Conditions"][name]))

    def resolve(self, value):
        """The value of an expression of the template, with the resources created so far."""
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "Ref" in value:
            name = value["Ref"]
            if name in self.parameters:
                return self.parameters[name]
            if name == "AWS::StackName":
                return STACK
            if name == "AWS::Region":
                return REGION
            return self.refs[name]
        if "Fn::GetAtt" in value:
            logical, attribute = value["Fn::GetAtt"]
            if attribute != "Arn":
                raise ValueError(f"unsupported attribute {logical}.{attribute}")
            return self.arns[logical]
        if "Fn::Sub" in value:
            text = value["Fn::Sub"]
            names = {"AWS::StackName": STACK, "AWS::Region": REGION, "AWS::URLSuffix": "amazonaws.com"}
            return re.sub(r"\$\{([^}]+)\}", lambda m: names.get(m.group(1)) or self.refs[m.group(1)], text)
        if "Fn::If" in value:
            name, yes, no = value["Fn::If"]
            return self.resolve(yes if self.condition(name) else no)
        if "Fn::Not" in value:
            return not self.resolve(value["Fn::Not"][0])
        if "Fn::Equals" in value:
            a, b = value["Fn::Equals"]
            return self.resolve(a) == self.resolve(b)
        return {k: self.resolve(v) for k, v in value.items()}

    def of_type(self, kind):
        return [(name, r) for name, r in self.resources.items() if r["Type"] == kind]


# ---- emulator clients ---------------------------------------------------------------------------


def clients(endpoint):
    session = botocore.session.get_session()
    make = lambda service: session.create_client(  # noqa: E731
        service,
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    return {s: make(s) for s in ("dynamodb", "sqs", "lambda", "apigatewayv2", "logs")}


def create_table(stack, aws, logical):
    props = stack.resolve(stack.resources[logical]["Properties"])
    name = f"{STACK}-table"
    aws["dynamodb"].create_table(
        TableName=name,
        BillingMode=props["BillingMode"],
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
        GlobalSecondaryIndexes=props["GlobalSecondaryIndexes"],
    )
    ttl = props["TimeToLiveSpecification"]
    aws["dynamodb"].update_time_to_live(
        TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": ttl["Enabled"]}
    )
    stack.refs[logical] = name


def create_queue(stack, aws, logical, visibility_overrides):
    """Creates a queue, its dead-letter queue first; returns nothing, records URL (Ref) and ARN."""
    if logical in stack.refs:
        return
    props = stack.resources[logical]["Properties"]
    redrive = props.get("RedrivePolicy")
    attributes = {}
    if redrive:
        dlq = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
        create_queue(stack, aws, dlq, visibility_overrides)
        resolved = stack.resolve(redrive)
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": resolved["deadLetterTargetArn"], "maxReceiveCount": resolved["maxReceiveCount"]}
        )
    for key in ("VisibilityTimeout", "MessageRetentionPeriod", "SqsManagedSseEnabled"):
        if key in props:
            attributes[key] = str(props[key]).lower() if isinstance(props[key], bool) else str(props[key])
    if logical in visibility_overrides:
        attributes["VisibilityTimeout"] = str(visibility_overrides[logical])
    name = stack.resolve(props["QueueName"])
    url = aws["sqs"].create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    stack.refs[logical] = url
    stack.arns[logical] = aws["sqs"].get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]


def function_config(stack, logical):
    """Name, binary and configuration of a function: the template's Globals under its own properties."""
    resource = stack.resources[logical]
    props = resource["Properties"]
    globals_ = stack.template["Globals"]["Function"]
    env = dict(globals_["Environment"]["Variables"])
    env.update(props.get("Environment", {}).get("Variables", {}))
    return {
        "binary": resource["Metadata"]["BuildProperties"]["Binary"],
        "runtime": props.get("Runtime", globals_["Runtime"]),
        "handler": props.get("Handler", globals_["Handler"]),
        "memory": props.get("MemorySize", globals_["MemorySize"]),
        "timeout": props.get("Timeout", globals_["Timeout"]),
        "architectures": props.get("Architectures", globals_["Architectures"]),
        "env": {k: str(stack.resolve(v)) for k, v in env.items()},
        "events": props.get("Events", {}),
    }


def deploy(stack, aws, zips, endpoint, visibility_overrides, log):
    """Creates what the template declares; functions without a zip in `zips` (not built) are left out,
    with their routes and event source mappings."""
    (table,) = stack.of_type("AWS::DynamoDB::Table")
    create_table(stack, aws, table[0])
    log(f"table {stack.refs[table[0]]}: key schema, GSI and TTL from template.yaml")
    for logical, _ in stack.of_type("AWS::SQS::Queue"):
        create_queue(stack, aws, logical, visibility_overrides)
    for logical, _ in stack.of_type("AWS::SQS::Queue"):
        attrs = aws["sqs"].get_queue_attributes(QueueUrl=stack.refs[logical], AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attrs["RedrivePolicy"]) if "RedrivePolicy" in attrs else None
        where = f", redrive to {redrive['deadLetterTargetArn'].rsplit(':', 1)[1]} after {redrive['maxReceiveCount']}" if redrive else ""
        log(f"queue {stack.resolve(stack.resources[logical]['Properties']['QueueName'])}: visibility {attrs.get('VisibilityTimeout')} s{where}")

    ((api_logical, _),) = stack.of_type("AWS::Serverless::HttpApi")
    api_id = aws["apigatewayv2"].create_api(Name=f"{STACK}-http-api", ProtocolType="HTTP")["ApiId"]
    stack.refs[api_logical] = api_id
    aws["apigatewayv2"].create_stage(ApiId=api_id, StageName="$default", AutoDeploy=True)
    base_url = f"{endpoint}/_aws/execute-api/{api_id}/$default"
    stack.parameters["PublicBaseUrl"] = base_url

    functions = {}
    routes = 0
    mappings = {}
    for logical, _ in stack.of_type("AWS::Serverless::Function"):
        config = function_config(stack, logical)
        name = config["binary"]
        if name not in zips:
            log(f"function {name}: not built, left out with its routes and event source mappings")
            continue
        env = dict(config["env"])
        # The functions' SDK calls reach the emulator (ministack also sets this for provided.* bootstraps).
        env["AWS_ENDPOINT_URL"] = endpoint
        created = aws["lambda"].create_function(
            FunctionName=name,
            Runtime=config["runtime"],
            Handler=config["handler"],
            Role=f"arn:aws:iam::000000000000:role/{name}",
            Code={"ZipFile": zips[name].read_bytes()},
            MemorySize=config["memory"],
            Timeout=config["timeout"],
            # The template deploys arm64; these zips are built for this x86_64 host.
            Architectures=["x86_64"],
            Environment={"Variables": env},
        )
        functions[name] = {"routes": [], "queues": []}
        for event in config["events"].values():
            props = event["Properties"]
            if event["Type"] == "HttpApi":
                integration = aws["apigatewayv2"].create_integration(
                    ApiId=api_id,
                    IntegrationType="AWS_PROXY",
                    IntegrationUri=created["FunctionArn"],
                    PayloadFormatVersion="2.0",
                )
                aws["apigatewayv2"].create_route(
                    ApiId=api_id,
                    RouteKey=f"{props['Method']} {props['Path']}",
                    Target=f"integrations/{integration['IntegrationId']}",
                )
                routes += 1
                functions[name]["routes"].append((props["Method"], props["Path"]))
            elif event["Type"] == "SQS":
                queue_logical = props["Queue"]["Fn::GetAtt"][0]
                mapping = aws["lambda"].create_event_source_mapping(
                    EventSourceArn=stack.arns[queue_logical],
                    FunctionName=name,
                    BatchSize=props.get("BatchSize", 10),
                    MaximumBatchingWindowInSeconds=props.get("MaximumBatchingWindowInSeconds", 0),
                    FunctionResponseTypes=props.get("FunctionResponseTypes", []),
                    # Enabled by the scenario once its messages wait together on the queue.
                    Enabled=False,
                )
                mappings[queue_logical] = mapping["UUID"]
                functions[name]["queues"].append(queue_logical)
            else:
                raise ValueError(f"{logical}: unsupported event type {event['Type']}")
        log(f"function {name}: {config['runtime']}, {config['memory']} MB, {config['timeout']} s, env {', '.join(sorted(env))}")
    log(f"HTTP API {api_id}: {routes} routes (AWS_PROXY, payload 2.0) at {base_url}")
    for queue_logical, uuid in mappings.items():
        m = aws["lambda"].get_event_source_mapping(UUID=uuid)
        log(
            f"event source mapping {m['EventSourceArn'].rsplit(':', 1)[1]} -> {m['FunctionArn'].rsplit(':', 1)[1]}: "
            f"batch {m['BatchSize']}, {m.get('FunctionResponseTypes')}"
        )
    return base_url, functions, mappings


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
    args = parser.parse_args()
    log = lambda text: print(f"  {text}", flush=True)  # noqa: E731

    template = yaml.load(Path(args.template).read_text(), Loader=TemplateLoader)
    stack = Stack(template, {"AdminToken": ADMIN_TOKEN, "PublicBaseUrl": ""}, args.endpoint)
    aws = clients(args.endpoint)
    zips = {name: Path(args.zips) / name / "bootstrap.zip" for name in args.functions.split()}
    checks = Checks()

    print("== deploy (from template.yaml)", flush=True)
    started = time.monotonic()
    base_url, functions, mappings = deploy(stack, aws, zips, args.endpoint, {"EventsQueue": args.visibility}, log)
    template_functions = [function_config(stack, l)["binary"] for l, _ in stack.of_type("AWS::Serverless::Function")]
    checks.check(
        sorted(functions) == sorted(zips) and set(zips) <= set(template_functions),
        f"{len(functions)} of the template's {len(template_functions)} functions deployed from cargo-lambda zips",
    )
    log(f"deployed in {time.monotonic() - started:.1f} s")
    events_url, dlq_url = stack.refs["EventsQueue"], stack.refs["EventsDeadLetterQueue"]
    max_receives = stack.resources["EventsQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"]

    print("== settings through settings-api", flush=True)
    settings = {
        "name": "Deployed Shape Daily",
        "origins": ["https://www.shape.example.com"],
        "stripeAccounts": [
            {"key": ACCOUNT_KEY, "name": "Shape Media Ltd", "secretKey": "sk_test_deployedshape0123456789", "webhookSecrets": [WEBHOOK_SECRET]}
        ],
    }
    http_times = {}
    status, body, secs = admin(base_url, "PUT", f"/admin/publications/{PUBLICATION}", settings)
    http_times.setdefault("settings-api", []).append(secs)
    checks.check(status == 201, f"PUT settings: {status} (created; {secs * 1000:.0f} ms, the function's cold start)")
    status, body, secs = admin(base_url, "GET", f"/admin/publications/{PUBLICATION}")
    http_times["settings-api"].append(secs)
    masked = isinstance(body, dict) and WEBHOOK_SECRET not in json.dumps(body)
    checks.check(status == 200 and body.get("name") == settings["name"] and masked, f"GET settings: {status}, name read back, secrets masked")

    print("== Stripe events through stripe-webhook, a poison message on the events queue", flush=True)
    sample = json.loads(Path(args.sample).read_text())
    # Two days old: not live, so applying them queues no automatic catch-up (which would call Stripe).
    created_at = int(time.time()) - 2 * 86400
    events, expected = customer_events(sample, args.customers, args.updated, created_at)
    poison_id = aws["sqs"].send_message(QueueUrl=events_url, MessageBody=POISON)["MessageId"]
    accepted = 0
    for event in events:
        body_text = json.dumps(event, separators=(",", ":"))
        headers = {
            "content-type": "application/json; charset=utf-8",
            "stripe-signature": stripe_signature(body_text, WEBHOOK_SECRET, int(time.time())),
        }
        status, _, secs = request(base_url, "POST", f"/webhooks/stripe/{PUBLICATION}/{ACCOUNT_KEY}", body_text, headers)
        http_times.setdefault("stripe-webhook", []).append(secs)
        accepted += status == 200
    checks.check(accepted == len(events), f"{accepted} of {len(events)} signed events accepted (200)")
    bad = dict(events[0], id="evt_shape_forged")
    bad_text = json.dumps(bad)
    status, _, _ = request(
        base_url,
        "POST",
        f"/webhooks/stripe/{PUBLICATION}/{ACCOUNT_KEY}",
        bad_text,
        {"content-type": "application/json", "stripe-signature": stripe_signature(bad_text, "whsec_wrong", int(time.time()))},
    )
    checks.check(status == 400, f"an event signed with another secret refused: {status}")
    visible, _ = queue_depth(aws, events_url)
    checks.check(visible == len(events) + 1, f"events queue holds {visible} messages ({len(events)} events + the poison)")

    print("== webhook-worker through the event source mapping", flush=True)
    started = time.monotonic()
    aws["lambda"].update_event_source_mapping(UUID=mappings["EventsQueue"], Enabled=True)
    settled = None
    while time.monotonic() - started < args.wait:
        visible, in_flight = queue_depth(aws, events_url)
        dead, _ = queue_depth(aws, dlq_url)
        if visible == 0 and in_flight == 0 and dead >= 1:
            settled = time.monotonic() - started
            break
        time.sleep(0.5)
    checks.check(settled is not None, f"events queue drained and the poison dead-lettered ({settled or args.wait:.1f} s)")
    # Before the dead-letter queue is read below (a received message no longer counts in its depth).
    status, health, secs = admin(base_url, "GET", f"/admin/publications/{PUBLICATION}/sync")
    http_times.setdefault("customers-api", []).append(secs)
    health = health if status == 200 else {}
    depths = {d.get("queue"): d.get("depth") for d in health.get("dlq", [])}
    applied = sum((s.get("last24h") or {}).get("applied", 0) for s in health.get("sources", []))
    checks.check(
        depths.get("events-dlq") == 1 and applied == len(events),
        f"sync health (customers-api): {status}, events-dlq depth {depths.get('events-dlq')}, {applied} applied in 24 h",
    )
    dead_messages = aws["sqs"].receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages", [])
    checks.check(
        [m["Body"] for m in dead_messages] == [POISON],
        f"dead-letter queue holds exactly the poison message ({len(dead_messages)} message(s))",
    )

    worker_lines = function_log(aws, "webhook-worker")
    worker_json = list(json_lines(worker_lines))
    outcomes = {}
    for line in worker_json:
        if line.get("message") == "event processed":
            outcomes[line.get("outcome")] = outcomes.get(line.get("outcome"), 0) + 1
    poison_attempts = sum(
        1
        for line in worker_json
        if line.get("level") == "ERROR" and poison_id in (line.get("message_id"), (line.get("span") or {}).get("message_id"))
    )
    checks.check(
        outcomes.get("Applied", 0) == len(events) and len(outcomes) == 1,
        f"each event applied once: {outcomes} for {len(events)} events",
    )
    checks.check(
        poison_attempts == max_receives,
        f"the poison failed {poison_attempts} times (maxReceiveCount {max_receives}) before the redrive",
    )
    emulator_log = Path(args.emulator_log).read_text(errors="replace")
    batches = re.findall(r"ESM: Lambda webhook-worker processed (\d+) SQS messages from \S+(?: \((\d+) partial failures\))?", emulator_log)
    mixed = [int(n) for n, failed in batches if failed and int(n) > 0]
    deleted = sum(int(n) for n, _ in batches)
    checks.check(bool(mixed), f"the poison shared a batch with events the mapping deleted ({mixed} others in its batches)")
    checks.check(deleted == len(events), f"the mapping deleted {deleted} messages over {len(batches)} batches: the {len(events)} events, none twice")

    print("== records read back through customers-api", flush=True)
    listed, cursor, pages = [], None, 0
    while True:
        query = "?limit=15" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
        status, body, secs = admin(base_url, "GET", f"/admin/publications/{PUBLICATION}/customers{query}")
        http_times.setdefault("customers-api", []).append(secs)
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
        status, record, secs = admin(base_url, "GET", f"/admin/publications/{PUBLICATION}/customers/{summary['id']}")
        http_times["customers-api"].append(secs)
        stripe_id = (record.get("stripeCustomerIds") or {}).get(ACCOUNT_KEY) if status == 200 else None
        want = expected.get(stripe_id)
        got = {"email": record.get("email"), "name": record.get("name")} if status == 200 else None
        if want is None or got != want:
            mismatches.append((summary.get("id"), stripe_id, got, want))
    checks.check(
        not mismatches and len(listed) == len(expected),
        f"{len(listed) - len(mismatches)} of {len(expected)} records equal what was sent (email, name after {args.updated} renames, Stripe id)",
    )
    for m in mismatches[:5]:
        log(f"mismatch: {m}")
    status, body, _ = admin(base_url, "GET", f"/admin/publications/{PUBLICATION}/customers?email=reader0000%40shape.example.com")
    found = body.get("data", []) if status == 200 else []
    checks.check(
        len(found) == 1 and found[0].get("name") == expected["cus_shape0000"]["name"],
        f"lookup by email through the GSI: {status}, {len(found)} found",
    )

    print("== the other functions start with the template's environment", flush=True)
    for name, deployed in functions.items():
        if name in SCENARIO:
            continue
        if deployed["queues"]:
            # An empty batch: init (configuration, store and queue clients) runs, then nothing fails.
            answer = aws["lambda"].invoke(FunctionName=name, Payload=json.dumps({"Records": []}).encode())
            payload = json.loads(answer["Payload"].read() or b"null")
            ok = "FunctionError" not in answer and isinstance(payload, dict) and payload.get("batchItemFailures") == []
            checks.check(ok, f"{name}: an empty SQS batch answered {payload}")
            continue
        method, path = next((m, p) for m, p in deployed["routes"] if m != "OPTIONS")
        path = path.replace("{publicationId}", PUBLICATION)
        path = re.sub(r"\{[^}]+\}", "x", path)
        # Unauthenticated: the function's own refusal (4xx) shows it started; 5xx would be init failing.
        status, body, _ = request(base_url, method, path, b"" if method in ("POST", "PUT", "PATCH", "DELETE") else None)
        checks.check(400 <= status < 500, f"{name}: {method} {path} answered {status} {json.dumps(body)[:80]}")

    print("== invocations as the emulator saw them", flush=True)
    spawned = {}
    for name in re.findall(r"Lambda provided-runtime environment spawned for (\S+) \(cold start\)", emulator_log):
        spawned[name] = spawned.get(name, 0) + 1
    print("| function | invocations | environments started (cold) | first invocation (ms) | median of the others (ms) |")
    print("|---|---:|---:|---:|---:|")
    for name in functions:
        d = durations(function_log(aws, name))
        rest = statistics.median(d[1:]) if len(d) > 1 else float("nan")
        print(f"| {name} | {len(d)} | {spawned.get(name, 0)} | {d[0] if d else 'n/a'} | {rest:.0f} |")
    for name, times in http_times.items():
        ms = sorted(t * 1000 for t in times)
        log(f"{name} through the HTTP API, client side: first {times[0] * 1000:.0f} ms, median {statistics.median(ms):.0f} ms over {len(ms)}")

    print(f"\n{checks.passed} passed, {checks.failed} failed")
    print("deployed shape: " + ("PASS" if checks.failed == 0 else "FAIL"))
    return 0 if checks.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
