"""Creates on the emulator what template.yaml declares (bench/deployed_shape): the table, the queues
with their redrive policies, the functions from cargo-lambda zips with their environment, the HTTP
API's routes and the SQS event source mappings, through the services' own APIs (botocore).
"""

import json

import botocore.session

from template_stack import REGION, STACK, function_config

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
        log(
            f"function {name}: {config['runtime']}, x86_64 (template: {', '.join(config['architectures'])}), "
            f"{config['memory']} MB, {config['timeout']} s, env {', '.join(sorted(env))}"
        )
    log(f"HTTP API {api_id}: {routes} routes (AWS_PROXY, payload 2.0) at {base_url}")
    for queue_logical, uuid in mappings.items():
        m = aws["lambda"].get_event_source_mapping(UUID=uuid)
        log(
            f"event source mapping {m['EventSourceArn'].rsplit(':', 1)[1]} -> {m['FunctionArn'].rsplit(':', 1)[1]}: "
            f"batch {m['BatchSize']}, {m.get('FunctionResponseTypes')}"
        )
    return base_url, functions, mappings
