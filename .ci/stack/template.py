"""template.yaml as `sam package` hands it to CloudFormation, and as CloudFormation expands it.

- `load`: the YAML with its short-form intrinsics (`!Ref`, `!Sub`, ...) read as JSON-form functions.
- `package`: each function's `CodeUri` replaced by the S3 location of its zip, which is all that
  `sam package` changes.
- `expand`: the AWS::LanguageExtensions transform (cfn-lint's implementation) and then the SAM
  transform (aws-sam-translator, the library the service runs), giving the plain CloudFormation
  template a stack is planned from. Used by check-template, not by the deploy: the deploy hands the
  packaged template to the emulator's CloudFormation, which runs the transforms itself.
"""

import json
import os
from types import SimpleNamespace

from cfnlint.decode import decode_str

SAM = "AWS::Serverless-2016-10-31"
LANGUAGE_EXTENSIONS = "AWS::LanguageExtensions"
FUNCTION = "AWS::Serverless::Function"


def load(path):
    template, problems = decode_str(open(path, encoding="utf-8").read())
    if problems:
        raise SystemExit(f"{path}: {'; '.join(str(p) for p in problems)}")
    # Plain dicts and lists, not cfn-lint's node types.
    return json.loads(json.dumps(template))


def functions(template):
    """(logical id, binary) of every function, in template order."""
    return [
        (logical, resource["Metadata"]["BuildProperties"]["Binary"])
        for logical, resource in template["Resources"].items()
        if isinstance(resource, dict) and resource.get("Type") == FUNCTION
    ]


def package(template, location):
    """The template with each function's CodeUri at `location(binary)` = (bucket, key)."""
    packaged = json.loads(json.dumps(template))
    for logical, binary in functions(packaged):
        bucket, key = location(binary)
        packaged["Resources"][logical]["Properties"]["CodeUri"] = {"Bucket": bucket, "Key": key}
    return packaged


def transforms(template):
    declared = template.get("Transform", [])
    return declared if isinstance(declared, list) else [declared]


def expand(template, path="template.yaml", region="us-east-1"):
    from cfnlint.template import Template
    from cfnlint.template.transforms._language_extensions import language_extension
    from samtranslator.translator.transform import transform as sam_transform

    declared = transforms(template)
    if LANGUAGE_EXTENSIONS in declared:
        problems, template = language_extension(Template(path, template, [region]))
        if problems:
            raise SystemExit(f"{path}: {LANGUAGE_EXTENSIONS}: {'; '.join(str(p) for p in problems)}")
        template = json.loads(json.dumps(template))
        template["Transform"] = [t for t in declared if t != LANGUAGE_EXTENSIONS]
    if SAM not in transforms(template):
        return template
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    # No managed policies are looked up: the template grants inline statements only.
    return sam_transform(template, {}, SimpleNamespace(load=lambda: {}))
