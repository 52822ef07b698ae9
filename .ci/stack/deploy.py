"""Deploys template.yaml through CloudFormation, as `sam deploy` does: zips uploaded to S3, each
function's CodeUri pointed at its zip (template.package), then a change set with the template's own
transforms (AWS::LanguageExtensions, AWS::Serverless-2016-10-31), which the engine runs, executed and
waited for. A stack that exists gets an UPDATE change set.

One gap of the emulator (ministack 1.5.33) is bridged, and only that one: its CloudFormation creates an
AWS::ApiGatewayV2::Api from the SAM-generated OpenAPI `Body` without turning the body into routes and
integrations. `bridge_routes` creates exactly the routes the processed template's body names, through
the emulator's API Gateway API, each integrated with the function the body names.
"""

import hashlib
import io
import json
import re
import time
import zipfile
from pathlib import Path

import template as tpl

DONE = ("CREATE_COMPLETE", "UPDATE_COMPLETE")


def zip_bootstrap(binary_path):
    """A Lambda zip of one executable, named `bootstrap` as provided.al2023 runs it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        info = zipfile.ZipInfo("bootstrap", date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, Path(binary_path).read_bytes())
    return buffer.getvalue()


def upload(s3, bucket, zips):
    """Uploads {binary: zip bytes}; returns {binary: key}, keys named by content as `sam package` does."""
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    keys = {}
    for binary, data in zips.items():
        key = f"{binary}/{hashlib.sha256(data).hexdigest()[:16]}.zip"
        s3.put_object(Bucket=bucket, Key=key, Body=data)
        keys[binary] = key
    return keys


def stack_exists(cfn, name):
    try:
        status = cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
    except cfn.exceptions.ClientError:
        return False
    return status != "REVIEW_IN_PROGRESS"


def failure_report(cfn, name):
    lines = []
    for event in cfn.describe_stack_events(StackName=name)["StackEvents"]:
        if "FAILED" in event["ResourceStatus"]:
            lines.append(f"{event['LogicalResourceId']} ({event['ResourceType']}): {event['ResourceStatus']}: "
                         f"{event.get('ResourceStatusReason', '')}")
    return lines


def deploy(aws, template_path, stack, bucket, zips, parameters, log, timeout=300):
    """Creates or updates `stack`; returns its outputs. Raises SystemExit naming what failed."""
    source = tpl.load(template_path)
    missing = sorted({binary for _, binary in tpl.functions(source)} - set(zips))
    if missing:
        raise SystemExit(f"no zip for {', '.join(missing)}")
    keys = upload(aws["s3"], bucket, zips)
    packaged = tpl.package(source, lambda binary: (bucket, keys[binary]))
    cfn = aws["cloudformation"]
    kind = "UPDATE" if stack_exists(cfn, stack) else "CREATE"
    change_set = f"{stack}-{int(time.time() * 1000)}"
    cfn.create_change_set(
        StackName=stack,
        ChangeSetName=change_set,
        ChangeSetType=kind,
        TemplateBody=json.dumps(packaged),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    started = time.monotonic()
    while True:
        described = cfn.describe_change_set(StackName=stack, ChangeSetName=change_set)
        if described["Status"] in ("CREATE_COMPLETE", "FAILED"):
            break
        if time.monotonic() - started > timeout:
            raise SystemExit(f"change set {change_set}: still {described['Status']} after {timeout} s")
        time.sleep(0.5)
    if described["Status"] == "FAILED":
        raise SystemExit(f"change set {change_set} failed: {described.get('StatusReason')}")
    log(f"change set {kind}: {len(described.get('Changes', []))} changes")
    cfn.execute_change_set(StackName=stack, ChangeSetName=change_set)
    while True:
        described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
        status = described["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            break
        if time.monotonic() - started > timeout:
            raise SystemExit(f"stack {stack}: still {status} after {timeout} s")
        time.sleep(0.5)
    if status not in DONE:
        report = "\n  ".join(failure_report(cfn, stack))
        raise SystemExit(f"stack {stack}: {status} ({described.get('StackStatusReason', '')})\n  {report}")
    log(f"stack {stack}: {status} in {time.monotonic() - started:.1f} s")
    bridge_routes(aws, stack, log)
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def physical_ids(cfn, stack):
    resources = {}
    paginator = cfn.get_paginator("list_stack_resources")
    for page in paginator.paginate(StackName=stack):
        for r in page["StackResourceSummaries"]:
            resources[r["LogicalResourceId"]] = r
    return resources


def bridge_routes(aws, stack, log):
    """The emulator's gap: routes and integrations of the HTTP API's generated OpenAPI body."""
    cfn, apigw, lam = aws["cloudformation"], aws["apigatewayv2"], aws["lambda"]
    processed = cfn.get_template(StackName=stack, TemplateStage="Processed")["TemplateBody"]
    processed = processed if isinstance(processed, dict) else json.loads(processed)
    resources = physical_ids(cfn, stack)
    for logical, resource in processed["Resources"].items():
        if resource["Type"] != "AWS::ApiGatewayV2::Api" or "Body" not in resource["Properties"]:
            continue
        api_id = resources[logical]["PhysicalResourceId"]
        existing = {r["RouteKey"] for r in apigw.get_routes(ApiId=api_id)["Items"]}
        created = 0
        for path, methods in resource["Properties"]["Body"].get("paths", {}).items():
            for method, operation in methods.items():
                route_key = f"{'ANY' if method == 'x-amazon-apigateway-any-method' else method.upper()} {path}"
                if route_key in existing:
                    continue
                integration = operation["x-amazon-apigateway-integration"]
                function = function_of(integration["uri"])
                arn = lam.get_function(FunctionName=resources[function]["PhysicalResourceId"])["Configuration"]["FunctionArn"]
                made = apigw.create_integration(
                    ApiId=api_id,
                    IntegrationType="AWS_PROXY",
                    IntegrationUri=arn,
                    IntegrationMethod="POST",
                    PayloadFormatVersion=integration.get("payloadFormatVersion", "2.0"),
                )
                apigw.create_route(ApiId=api_id, RouteKey=route_key, Target=f"integrations/{made['IntegrationId']}")
                created += 1
        log(f"bridged {created} routes of {logical}'s OpenAPI body ({len(existing)} there already)")


def function_of(uri):
    """The logical id of the function an integration URI names: `${XFunction.Arn}` in its Fn::Sub."""
    text = uri["Fn::Sub"] if isinstance(uri, dict) else uri
    text = text[0] if isinstance(text, list) else text
    return re.search(r"\$\{(\w+)\.Arn\}", text).group(1)
