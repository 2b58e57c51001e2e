"""The root serverless.yml, packaged offline by osls: functions, events, concurrency and least-privilege IAM.

``osls package`` renders the CloudFormation template without an AWS account (dummy credentials, no
telemetry). The tests read the rendered template, so they check what would be deployed, including
SECURITY.md rule 26: each function role reads only the model prefix (the storage role also its
trigger prefix), writes only the output prefix, and has kms:Decrypt/kms:Verify at most.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.emulate.osls import osls_env, run_osls, tiny_artifact

pytestmark = pytest.mark.slow

KMS_KEY = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
CUSTOM_ENV = {"MODELFN_MODEL_BUCKET": "models-bkt", "MODELFN_MODEL_PREFIX": "prod/models", "MODELFN_MODEL_NAME": "iris"}
CUSTOM_PARAMS = {
    "triggerBucket": "data-bkt", "triggerPrefix": "in/", "triggerSuffix": ".csv", "outputBucket": "out-bkt",
    "outputPrefix": "scored", "kmsKeyArn": KMS_KEY, "httpMemory": "3008", "httpTimeout": "20",
    "httpReservedConcurrency": "20", "httpProvisionedConcurrency": "2", "storageReservedConcurrency": "5",
    "storageBatchSize": "4", "storageMaxReceiveCount": "5", "storageMemory": "4096", "storageTimeout": "600",
}  # fmt: skip
HTTP_ROUTES = {
    "POST /predict", "GET /v2/health/live", "GET /v2/health/ready", "GET /v2/models/{name}",
    "GET /v2/models/{name}/ready", "POST /v2/models/{name}/infer", "GET /v2/models/{name}/versions/{version}",
    "GET /v2/models/{name}/versions/{version}/ready", "POST /v2/models/{name}/versions/{version}/infer",
    "GET /v1/models", "GET /v1/{proxy+}", "POST /v1/{proxy+}", "POST /predictions/{proxy+}", "GET /ping",
}  # fmt: skip
S3_READ = {"s3:GetObject", "s3:GetObjectVersion"}
S3_WRITE = {"s3:PutObject", "s3:AbortMultipartUpload"}
LOGS = {"logs:CreateLogStream", "logs:PutLogEvents"}
SQS_CONSUME = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"}


def _package(tmp: Path, env: dict[str, str], params: dict[str, str]) -> dict[str, Any]:
    artifact = tiny_artifact(tmp / "dist")
    out = tmp / "package"
    args = [f"--param={k}={v}" for k, v in params.items()]
    run_osls("package", "--package", str(out), *args,
             env=osls_env(tmp / "home", {"MODELFN_LAMBDA_ZIP": str(artifact), **env}))  # fmt: skip
    template: dict[str, Any] = json.loads((out / "cloudformation-template-update-stack.json").read_text())
    return template


@pytest.fixture(scope="module")
def default_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _package(tmp_path_factory.mktemp("sls-default"), {}, {})


@pytest.fixture(scope="module")
def custom_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _package(tmp_path_factory.mktemp("sls-custom"), CUSTOM_ENV, CUSTOM_PARAMS)


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def function(template: dict[str, Any], key: str) -> dict[str, Any]:
    props: dict[str, Any] = template["Resources"][f"{key[0].upper()}{key[1:]}LambdaFunction"]["Properties"]
    return props


def _condition(template: dict[str, Any], value: Any) -> bool:
    """Evaluate a CloudFormation condition built from Fn::Not/Fn::Equals/Fn::And/Fn::Or on literals."""
    if isinstance(value, dict) and "Condition" in value:
        return _condition(template, template["Conditions"][value["Condition"]])
    [(op, args)] = value.items()
    if op == "Fn::Equals":
        return bool(args[0] == args[1])
    if op == "Fn::Not":
        return not _condition(template, args[0])
    if op == "Fn::And":
        return all(_condition(template, a) for a in args)
    if op == "Fn::Or":
        return any(_condition(template, a) for a in args)
    raise AssertionError(f"unexpected condition {value}")


def role_statements(template: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """Every statement of the function's role, with Fn::If policies resolved against the template's conditions."""
    role_name = function(template, key)["Role"]["Fn::GetAtt"][0]
    role = template["Resources"][role_name]["Properties"]
    assert "ManagedPolicyArns" not in role, role_name  # every permission is in the inline policies read here
    statements: list[dict[str, Any]] = []
    for policy in role["Policies"]:
        if "Fn::If" in policy:
            name, yes, no = policy["Fn::If"]
            policy = yes if _condition(template, template["Conditions"][name]) else no
        if policy == {"Ref": "AWS::NoValue"}:
            continue
        statements.extend(policy["PolicyDocument"]["Statement"])
    return statements


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def check_rule_26(
    statements: list[dict[str, Any]], *, reads: set[str], writes: set[str], list_prefixes: set[str], kms: str | None
) -> None:
    """Only Allow, no wildcards; S3 reads/writes/lists only where given; KMS Decrypt/Verify on one key or none."""
    kms_actions: set[str] = set()
    for st in statements:
        assert st["Effect"] == "Allow" and "NotAction" not in st and "NotResource" not in st, st
        actions = set(_list(st["Action"]))
        assert not any("*" in a for a in actions), st
        assert st["Resource"] != "*" and "*" not in _list(st["Resource"]), st
        if actions & (S3_READ | S3_WRITE):
            assert actions <= S3_READ | S3_WRITE, st
            targets = set(_list(st["Resource"]))
            assert targets <= (writes if actions & S3_WRITE else reads | writes), st
            if actions & S3_READ:
                assert targets <= reads | writes, st
        elif actions == {"s3:ListBucket"}:
            bucket = st["Resource"].removeprefix("arn:aws:s3:::")
            prefixes = {f"{bucket}/{p}" for p in st["Condition"]["StringLike"]["s3:prefix"]}
            assert prefixes <= list_prefixes, st
        elif actions <= {"kms:Decrypt", "kms:Verify"}:
            kms_actions |= actions
            assert _list(st["Resource"]) == [kms], st
        else:
            assert actions <= LOGS | SQS_CONSUME, st
    assert kms_actions == ({"kms:Decrypt", "kms:Verify"} if kms else set())


def test_functions_take_handler_artifact_and_settings_from_params(custom_template: dict[str, Any]) -> None:
    # GIVEN serverless.yml packaged with parameters from --param and from the environment
    http, storage, queue = (function(custom_template, k) for k in ("http", "storage", "storageQueue"))
    # THEN each function runs the right handler on the prebuilt artifact with its own memory and timeout
    assert http["Handler"] == "modelfn.handlers.http.handler"
    assert storage["Handler"] == queue["Handler"] == "modelfn.handlers.storage_event.handler"
    assert {f["Runtime"] for f in (http, storage, queue)} == {"python3.12"}
    assert {f["Code"]["S3Key"].rsplit("/", 1)[-1] for f in (http, storage, queue)} == {"modelfn-lambda.zip"}
    assert (http["MemorySize"], http["Timeout"]) == (3008, 20)
    assert (storage["MemorySize"], storage["Timeout"]) == (queue["MemorySize"], queue["Timeout"]) == (4096, 600)
    # AND the run-time settings come from the same parameters
    env = http["Environment"]["Variables"]
    assert env["MODELFN_STORE_URL"] == "s3://models-bkt/prod/models" and env["MODELFN_MODEL_NAME"] == "iris"
    storage_env = storage["Environment"]["Variables"]
    assert storage_env["MODELFN_INPUT_URL"] == "s3://data-bkt/in/"
    assert storage_env["MODELFN_OUTPUT_URL"] == "s3://out-bkt/scored"
    assert queue["Environment"]["Variables"]["MODELFN_OUTPUT_URL"] == "s3://out-bkt/scored"


def test_http_api_v2_routes_cover_v2_and_predict(default_template: dict[str, Any]) -> None:
    routes = {r["Properties"]["RouteKey"] for r in resources(default_template, "AWS::ApiGatewayV2::Route").values()}
    assert routes == HTTP_ROUTES
    [integration] = resources(default_template, "AWS::ApiGatewayV2::Integration").values()
    assert integration["Properties"]["PayloadFormatVersion"] == "2.0"
    assert resources(default_template, "AWS::ApiGateway::ApiKey") == {}  # auth is IAM/JWT, never API keys
    # AND every route is IAM-authorized (SECURITY.md rule 18: the platform authenticates callers)
    kinds = {
        r["Properties"].get("AuthorizationType")
        for r in resources(default_template, "AWS::ApiGatewayV2::Route").values()
    }
    assert kinds == {"AWS_IAM"}


def test_storage_function_gets_the_filtered_bucket_notification(custom_template: dict[str, Any]) -> None:
    [notification] = resources(custom_template, "Custom::S3").values()
    props = notification["Properties"]
    assert props["BucketName"] == "data-bkt" and props["FunctionName"].endswith("-storage")
    assert props["BucketConfigs"] == [{"Event": "s3:ObjectCreated:*", "Rules": [{"Prefix": "in/"}, {"Suffix": ".csv"}]}]


def test_sqs_variant_has_a_dead_letter_queue_and_partial_batch_failures(custom_template: dict[str, Any]) -> None:
    [mapping] = resources(custom_template, "AWS::Lambda::EventSourceMapping").values()
    props = mapping["Properties"]
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"] and props["BatchSize"] == 4
    assert props["EventSourceArn"] == {"Fn::GetAtt": ["StorageQueue", "Arn"]}
    assert props["FunctionName"] == {"Fn::GetAtt": ["StorageQueueLambdaFunction", "Arn"]}
    queue = custom_template["Resources"]["StorageQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["StorageDeadLetterQueue", "Arn"]}
    assert int(queue["RedrivePolicy"]["maxReceiveCount"]) == 5  # --param values stay strings; CloudFormation casts
    assert int(queue["VisibilityTimeout"]) >= 6 * 300
    [statement] = custom_template["Resources"]["StorageQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"} and statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"]["ArnLike"] == {"aws:SourceArn": "arn:aws:s3:::data-bkt"}


def test_concurrency_is_reserved_and_provisioned_only_when_asked(
    default_template: dict[str, Any], custom_template: dict[str, Any]
) -> None:
    # GIVEN no concurrency parameters, THEN the account pool is used and nothing is kept warm
    for key in ("http", "storage", "storageQueue"):
        assert "ReservedConcurrentExecutions" not in function(default_template, key)
    assert resources(default_template, "AWS::Lambda::Alias") == {}
    # GIVEN reserved and provisioned concurrency, THEN the functions reserve it and HTTP API calls the warm alias
    assert function(custom_template, "http")["ReservedConcurrentExecutions"] == 20
    assert function(custom_template, "storage")["ReservedConcurrentExecutions"] == 5
    [alias] = resources(custom_template, "AWS::Lambda::Alias").values()
    assert alias["Properties"]["ProvisionedConcurrencyConfig"] == {"ProvisionedConcurrentExecutions": 2}
    [integration] = resources(custom_template, "AWS::ApiGatewayV2::Integration").values()
    assert "provisioned" in json.dumps(integration["Properties"]["IntegrationUri"])


@pytest.mark.parametrize("which", ["default", "custom"])
def test_function_roles_are_least_privilege(which: str, request: pytest.FixtureRequest) -> None:
    # GIVEN the rendered template, with and without a KMS key
    template: dict[str, Any] = request.getfixturevalue(f"{which}_template")
    if which == "custom":
        model, trigger, out, kms = "models-bkt/prod/models", "data-bkt/in/", "out-bkt/scored", KMS_KEY
    else:
        model, trigger, out, kms = "modelfn-models/models", "modelfn-data/incoming/", "modelfn-data/results", None
    # THEN the HTTP role reads only the model prefix and writes nothing
    check_rule_26(role_statements(template, "http"), reads={f"arn:aws:s3:::{model}/*"}, writes=set(),
                  list_prefixes={f"{model}/*"}, kms=kms)  # fmt: skip
    # AND the storage roles read the model and trigger prefixes and write only the output prefix
    for key in ("storage", "storageQueue"):
        check_rule_26(role_statements(template, key), reads={f"arn:aws:s3:::{model}/*", f"arn:aws:s3:::{trigger}*"},
                      writes={f"arn:aws:s3:::{out}/*"}, list_prefixes={f"{model}/*", f"{trigger}*", f"{out}/*"},
                      kms=kms)  # fmt: skip
    # AND nothing anywhere in the stack may sign with KMS
    assert "kms:Sign" not in json.dumps(template)
