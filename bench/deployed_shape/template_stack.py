"""template.yaml read as data: CloudFormation's short-form tags as their long forms, and a `Stack` that
resolves the template's expressions (Ref, GetAtt Arn, Sub, If, Not, Equals) against what the
emulator created, so bench/deployed_shape deploys what the template says rather than a copy of it.
"""

import re
from pathlib import Path

import yaml

REGION = "us-east-1"
STACK = "crm"


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

    def __init__(self, template, parameters):
        self.template = template
        self.resources = template["Resources"]
        self.parameters = parameters
        self.refs = {}
        self.arns = {}

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



def load(path):
    return yaml.load(Path(path).read_text(), Loader=TemplateLoader)


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
