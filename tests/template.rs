//! `template.yaml` as a reviewer would read it: every client action has its route, the
//! authorizer guards `$connect`, every function is a cargo lambda build of one of our binaries
//! with a log group that expires, and no statement grants more than it names.

use std::collections::BTreeSet;

use jobcast::protocol::ClientMessage;
use serde_norway::Value;

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    serde_norway::from_str(&std::fs::read_to_string(path).expect("template.yaml"))
        .expect("template.yaml is YAML")
}

fn resources_of_type<'a>(template: &'a Value, kind: &str) -> Vec<(String, &'a Value)> {
    template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, resource)| resource["Type"].as_str() == Some(kind))
        .map(|(name, resource)| (name.as_str().unwrap().to_owned(), resource))
        .collect()
}

/// `!Sub integrations/${X}` and `!Ref X` read back as tagged values; their text is enough here.
fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Tagged(tagged) => text(&tagged.value),
        Value::Sequence(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        other => format!("{other:?}"),
    }
}

#[test]
fn every_client_action_has_a_route_to_the_default_function() {
    let template = template();
    let routes: Vec<(String, String, &Value)> =
        resources_of_type(&template, "AWS::ApiGatewayV2::Route")
            .into_iter()
            .map(|(_, route)| {
                let properties = &route["Properties"];
                (
                    text(&properties["RouteKey"]),
                    text(&properties["Target"]),
                    properties,
                )
            })
            .collect();
    let keys: BTreeSet<&str> = routes.iter().map(|(key, _, _)| key.as_str()).collect();
    let mut expected: BTreeSet<&str> = ClientMessage::ACTIONS.into_iter().collect();
    expected.extend(["$connect", "$disconnect", "$default"]);
    assert_eq!(keys, expected);
    for (key, target, properties) in &routes {
        let integration = match key.as_str() {
            "$connect" => "ConnectIntegration",
            "$disconnect" => "DisconnectIntegration",
            _ => "DefaultIntegration",
        };
        assert_eq!(*target, format!("integrations/${{{integration}}}"), "{key}");
        if key == "$connect" {
            assert_eq!(text(&properties["AuthorizationType"]), "CUSTOM");
            assert_eq!(text(&properties["AuthorizerId"]), "Authorizer");
        }
    }
    let api = &template["Resources"]["WebSocketApi"]["Properties"];
    assert_eq!(text(&api["ProtocolType"]), "WEBSOCKET");
    assert_eq!(
        text(&api["RouteSelectionExpression"]),
        "$request.body.action"
    );
    let authorizer = &template["Resources"]["Authorizer"]["Properties"];
    assert_eq!(text(&authorizer["AuthorizerType"]), "REQUEST");
    assert!(!text(&authorizer["IdentitySource"]).is_empty());
}

#[test]
fn every_function_is_one_of_our_binaries_with_a_log_group_that_expires() {
    let template = template();
    let globals = &template["Globals"]["Function"];
    assert_eq!(text(&globals["Runtime"]), "provided.al2023");
    assert_eq!(text(&globals["Handler"]), "bootstrap");
    assert_eq!(text(&globals["Architectures"]), "Architecture");
    assert_eq!(
        text(&template["Parameters"]["Architecture"]["Default"]),
        "arm64"
    );
    let functions = resources_of_type(&template, "AWS::Serverless::Function");
    let binaries: BTreeSet<String> = functions
        .iter()
        .map(|(name, function)| {
            assert_eq!(
                text(&function["Metadata"]["BuildMethod"]),
                "rust-cargolambda",
                "{name}"
            );
            let binary = text(&function["Metadata"]["BuildProperties"]["Binary"]);
            let main = concat!(env!("CARGO_MANIFEST_DIR"), "/../functions/").to_owned()
                + &binary
                + "/src/main.rs";
            assert!(
                std::path::Path::new(&main).exists(),
                "{name}: no functions/{binary}"
            );
            let log_group = text(&function["Properties"]["LoggingConfig"]["LogGroup"]);
            let group = &template["Resources"][log_group.as_str()];
            assert_eq!(text(&group["Type"]), "AWS::Logs::LogGroup", "{name}");
            assert_eq!(
                text(&group["Properties"]["RetentionInDays"]),
                "LogRetentionDays"
            );
            binary
        })
        .collect();
    let all: BTreeSet<String> = ["authorizer", "connect", "default", "disconnect", "sender"]
        .map(String::from)
        .into();
    assert_eq!(binaries, all);
    // The sender does TLS and the fan-out: it gets more memory than the connection routes.
    let memory = |name: &str| {
        let own = &template["Resources"][name]["Properties"]["MemorySize"];
        let value = if own.is_null() {
            &globals["MemorySize"]
        } else {
            own
        };
        value.as_u64().unwrap()
    };
    assert!(memory("SenderFunction") > memory("ConnectFunction"));
    let sqs =
        &template["Resources"]["SenderFunction"]["Properties"]["Events"]["Queue"]["Properties"];
    assert_eq!(
        text(&sqs["FunctionResponseTypes"]),
        "ReportBatchItemFailures"
    );
    let queue = &template["Resources"]["EventQueue"]["Properties"];
    assert_eq!(queue["FifoQueue"], Value::Bool(true));
    assert_eq!(
        text(&queue["RedrivePolicy"]["maxReceiveCount"]),
        "MaxReceiveCount"
    );
}

#[test]
fn no_statement_grants_more_than_it_names() {
    let template = template();
    let mut statements = Vec::new();
    for (name, function) in resources_of_type(&template, "AWS::Serverless::Function") {
        for policy in function["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            for statement in policy["Statement"].as_sequence().unwrap() {
                statements.push((name.clone(), statement));
            }
        }
    }
    for (name, policy) in resources_of_type(&template, "AWS::IAM::ManagedPolicy") {
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
            .as_sequence()
            .unwrap()
        {
            statements.push((name.clone(), statement));
        }
    }
    assert!(statements.len() > 8);
    for (name, statement) in statements {
        let actions = text(&statement["Action"]);
        let resources = text(&statement["Resource"]);
        for action in actions.split(',') {
            assert!(!action.contains('*'), "{name}: a wildcard action {action}");
        }
        if let Some(problem) = too_wide(&statement["Resource"]) {
            panic!("{name}: {actions}: {problem}");
        }
        if actions.contains("execute-api:ManageConnections") {
            for resource in resources.split(',') {
                assert!(resource.contains("/@connections/"), "{name}: {resource}");
            }
        }
    }
    let outputs: BTreeSet<&str> = template["Outputs"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    for output in [
        "WebSocketUrl",
        "ConnectionsEndpoint",
        "SenderFunctionArn",
        "EventQueueUrl",
    ] {
        assert!(outputs.contains(output), "output {output}");
    }
}

/// Why a statement's `Resource` grants more than it names, if it does: every resource must be
/// one of this stack's (`!GetAtt`, or a `!Sub` naming one), and the only wildcard allowed is a
/// connection id at the end of an `@connections/` ARN.
fn too_wide(resource: &Value) -> Option<String> {
    match resource {
        Value::Sequence(items) if items.is_empty() => Some("an empty resource list".into()),
        Value::Sequence(items) => items.iter().find_map(too_wide),
        Value::Tagged(tagged) if tagged.tag == "GetAtt" => match &tagged.value {
            Value::String(target) if !target.contains('*') => None,
            other => Some(format!("!GetAtt of {other:?}")),
        },
        Value::Tagged(tagged) if tagged.tag == "Sub" => {
            let arn = text(&tagged.value);
            let names_ours = arn.starts_with("${") || arn.contains(":${WebSocketApi}/");
            let wildcards = arn.matches('*').count();
            let connection_wildcard = arn.ends_with("/@connections/*");
            if !names_ours {
                Some(format!("{arn} names no resource of this stack"))
            } else if wildcards > usize::from(connection_wildcard) {
                Some(format!("{arn} has a wildcard that is not a connection id"))
            } else {
                None
            }
        }
        other => Some(format!("{} is not a resource of this stack", text(other))),
    }
}

#[test]
fn the_resource_check_refuses_what_it_should() {
    let parse = |yaml: &str| -> Value { serde_norway::from_str(yaml).unwrap() };
    for wide in [
        "'*'",
        "['*']",
        "[!GetAtt JobsTable.Arn, '*']",
        "arn:aws:dynamodb:eu-west-1:123456789012:table/*",
        "!Sub arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/*",
        "!Sub ${ConnectionsTable.Arn}/*",
        "!Sub ${ConnectionsTable.Arn}/index/*",
        "!Sub arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebSocketApi}/*",
        "!Sub arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebSocketApi}/*/POST/@connections/*",
        "[]",
    ] {
        assert!(too_wide(&parse(wide)).is_some(), "{wide} passed");
    }
    for narrow in [
        "!GetAtt JobsTable.Arn",
        "!Sub ${ConnectionsTable.Arn}/index/by_job",
        "[!GetAtt JobsTable.Arn, !Sub '${ConnectionsTable.Arn}/index/by_user']",
        "!Sub arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebSocketApi}/${StageName}/POST/@connections/*",
    ] {
        assert_eq!(too_wide(&parse(narrow)), None, "{narrow}");
    }
}

#[test]
fn operators_hear_about_loss() {
    let template = template();
    let alarms = resources_of_type(&template, "AWS::CloudWatch::Alarm");
    let watched: BTreeSet<String> = alarms
        .iter()
        .map(|(_, alarm)| {
            let properties = &alarm["Properties"];
            // Every alarm goes to the optional topic, and says what it means.
            let actions = &properties["AlarmActions"];
            assert_eq!(
                text(actions),
                "WithAlarmTopic,AlarmTopicArn,AWS::NoValue",
                "alarms notify the AlarmTopicArn parameter when it is set"
            );
            assert!(!text(&properties["AlarmDescription"]).is_empty());
            assert_eq!(text(&properties["TreatMissingData"]), "notBreaching");
            let metric = if properties["MetricName"].is_null() {
                properties["Metrics"][1]["MetricStat"]["Metric"]["MetricName"].clone()
            } else {
                properties["MetricName"].clone()
            };
            text(&metric)
        })
        .collect();
    let expected: BTreeSet<String> = [
        "ApproximateNumberOfMessagesVisible",
        "Errors",
        "Failed",
        "Throttles",
    ]
    .map(String::from)
    .into();
    assert_eq!(watched, expected);
    // The dead-letter alarm watches the dead-letter queue, the fan-out alarm jobcast's own
    // metric with no dimension (the metrics line publishes that aggregate).
    let dlq = alarms
        .iter()
        .find(|(_, alarm)| text(&alarm["Properties"]["Namespace"]) == "AWS/SQS")
        .unwrap();
    assert_eq!(
        text(&dlq.1["Properties"]["Dimensions"][0]["Value"]),
        "EventDeadLetterQueue.QueueName"
    );
    let failed = alarms
        .iter()
        .find(|(_, alarm)| text(&alarm["Properties"]["MetricName"]) == "Failed")
        .unwrap();
    assert_eq!(
        text(&failed.1["Properties"]["Namespace"]),
        jobcast::metrics::NAMESPACE
    );
    assert!(failed.1["Properties"]["Dimensions"].is_null());
    let line: serde_json::Value = serde_json::from_str(&jobcast::metrics::fan_out_line(
        "job_complete",
        &Default::default(),
    ))
    .unwrap();
    assert!(
        line["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|set| set.as_array().is_some_and(Vec::is_empty)),
        "the fan-out line publishes an all-types aggregate: {line}"
    );
    assert_eq!(
        resources_of_type(&template, "AWS::CloudWatch::Dashboard").len(),
        1
    );
    let globals = &template["Globals"]["Function"];
    assert_eq!(text(&globals["Tracing"]), "TracingMode");
}

/// The security settings reach the functions that read them: the authorizer's origins, the
/// per-user connection limit (and `$connect`'s right to count), ownerless jobs closed by
/// default, and a reserved-concurrency knob on every function that is off unless set.
#[test]
fn the_security_settings_reach_their_functions() {
    let template = template();
    let parameters = &template["Parameters"];
    assert_eq!(text(&parameters["OpenOwnerlessJobs"]["Default"]), "false");
    assert_eq!(
        parameters["MaxConnectionsPerUser"]["Default"].as_u64(),
        Some(20)
    );
    let function = |name: &str| &template["Resources"][name]["Properties"];
    let authorizer_env = &function("AuthorizerFunction")["Environment"]["Variables"];
    assert_eq!(text(&authorizer_env["ALLOWED_ORIGINS"]), "AllowedOrigins");
    let globals = &template["Globals"]["Function"]["Environment"]["Variables"];
    assert_eq!(
        text(&globals["MAX_CONNECTIONS_PER_USER"]),
        "MaxConnectionsPerUser"
    );
    assert_eq!(text(&globals["OPEN_OWNERLESS_JOBS"]), "OpenOwnerlessJobs");
    let connect_resources = text(&function("ConnectFunction")["Policies"]);
    assert!(
        connect_resources.contains("index/by_user"),
        "$connect counts the user's connections: {connect_resources}"
    );
    assert!(
        connect_resources.contains("SenderFunction") && connect_resources.contains("JobsTable"),
        "$connect checks a one-job socket's job and hands its subscribe to the sender: {connect_resources}"
    );
    assert_eq!(
        text(&function("ConnectFunction")["Environment"]["Variables"]["SENDER_FUNCTION_NAME"]),
        "SenderFunction"
    );
    let sender_resources = text(&function("SenderFunction")["Policies"]);
    assert!(
        sender_resources.contains("/GET/@connections/*"),
        "the sender asks whether a one-job socket is open: {sender_resources}"
    );
    for (name, _) in resources_of_type(&template, "AWS::Serverless::Function") {
        let reserved = text(&function(&name)["ReservedConcurrentExecutions"]);
        let knob = name.replace("Function", "ReservedConcurrency");
        assert!(
            reserved.contains(&knob) && reserved.contains("AWS::NoValue"),
            "{name}: {reserved}"
        );
        assert_eq!(
            parameters[knob.as_str()]["Default"].as_u64(),
            Some(0),
            "{knob}"
        );
    }
}
