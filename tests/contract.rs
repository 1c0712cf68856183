//! The contract between the state machines, the functions and the deployment: every
//! `ErrorEquals` names a real error type, every `${...FunctionArn}` a crate in functions/,
//! and every file loads in the simulator.

use lifecycle::error::ERROR_TYPES;
use serde_json::Value;
use sim::Machine;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Errors the Lambda service itself raises, which Retry blocks may name.
const LAMBDA_ERRORS: &[&str] = &[
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
];

/// What the `states:startExecution.sync` integration raises besides the child's own failure.
const STEP_FUNCTIONS_ERRORS: &[&str] = &[
    "StepFunctions.ExecutionLimitExceededException",
    "StepFunctions.StateMachineDoesNotExistException",
    "StepFunctions.SdkClientException",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

fn machines() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root().join("statemachines")).expect("statemachines/") {
        let p = e.expect("entry").path();
        if p.to_string_lossy().ends_with(".asl.json") {
            let text = std::fs::read_to_string(&p).expect("read");
            out.push((
                p.display().to_string(),
                serde_json::from_str(&text).expect("valid JSON"),
            ));
        }
    }
    assert!(!out.is_empty(), "no state machines found");
    out
}

fn function_crates() -> BTreeSet<String> {
    std::fs::read_dir(root().join("functions"))
        .expect("functions/")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn every_error_equals_is_a_real_error_type() {
    for (file, def) in machines() {
        for name in sim::asl::error_names(&def) {
            let known = ERROR_TYPES.contains(&name.as_str())
                || name.starts_with("States.")
                || lifecycle::error::MACHINE_OUTCOMES.contains(&name.as_str())
                || LAMBDA_ERRORS.contains(&name.as_str())
                || STEP_FUNCTIONS_ERRORS.contains(&name.as_str());
            assert!(
                known,
                "{file}: {name} is not an error type any handler raises (known: {ERROR_TYPES:?})"
            );
        }
    }
}

#[test]
fn every_placeholder_is_a_function_crate_and_every_crate_is_registered() {
    let crates = function_crates();
    for (file, def) in machines() {
        for r in sim::asl::resources(&def) {
            assert!(
                r.starts_with("${") && r.ends_with("FunctionArn}"),
                "{file}: resource {r} is not a ${{...FunctionArn}} placeholder"
            );
            let f = tenantctl::registry::function_for(&r).expect("names a function");
            assert!(
                crates.contains(&f),
                "{file}: {r} names {f}, which is not a crate in functions/"
            );
        }
    }
    let files: BTreeSet<String> = machines()
        .iter()
        .filter_map(|(f, _)| {
            Path::new(f)
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".asl.json"))
                .map(str::to_owned)
        })
        .collect();
    for (file, def) in machines() {
        for arn in sim::asl::started_machines(&def) {
            let stem = tenantctl::registry::machine_file(&arn).unwrap_or_else(|| {
                panic!("{file}: {arn} is not a ${{...StateMachineArn}} placeholder")
            });
            assert!(
                files.contains(&stem),
                "{file}: {arn} names statemachines/{stem}.asl.json, which does not exist"
            );
        }
    }
    let registered: BTreeSet<String> = tenantctl::registry::FUNCTIONS
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        registered, crates,
        "the simulator's registry and functions/ must list the same functions"
    );
}

#[test]
fn every_state_machine_loads_in_the_simulator() {
    for (file, def) in machines() {
        if let Err(e) = Machine::load(&def) {
            panic!("{file}: {e}");
        }
    }
}

#[test]
fn the_sam_template_substitutes_every_placeholder_and_ships_every_function() {
    let template =
        std::fs::read_to_string(root().join("infra/template.yaml")).expect("infra/template.yaml");
    for (file, def) in machines() {
        for r in sim::asl::resources(&def)
            .into_iter()
            .chain(sim::asl::started_machines(&def))
        {
            let key = r.trim_start_matches("${").trim_end_matches('}');
            assert!(
                template.contains(&format!("{key}:")),
                "infra/template.yaml has no DefinitionSubstitutions entry {key} for {file}"
            );
        }
    }
    for f in function_crates() {
        assert!(
            template.contains(&format!("functions/{f}"))
                || template.contains(&format!("target/lambda/{f}")),
            "infra/template.yaml does not deploy {f}"
        );
    }
}

#[test]
fn the_sam_templates_catalog_is_valid_with_and_without_green_locations_and_streams() {
    let template =
        std::fs::read_to_string(root().join("infra/template.yaml")).expect("infra/template.yaml");
    let start = template
        .find("TENANT_CATALOG: !Sub\n          - |\n")
        .expect("the catalog is a !Sub with variables");
    let body: String = template[start..]
        .lines()
        .skip(2)
        .take_while(|l| !l.starts_with("          - "))
        .map(|l| format!("{}\n", l.strip_prefix("            ").unwrap_or(l)))
        .collect();
    // An optional system's block: the `!Sub |` text of its `!If` variable.
    let block = |name: &str| -> String {
        let at = template
            .find(&format!("{name}: !If"))
            .unwrap_or_else(|| panic!("{name} is a variable of the catalog"));
        template[at..]
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("- !Sub |"))
            .skip(1)
            .take_while(|l| l.trim() != "- \"\"")
            .map(|l| format!("{}\n", l.trim_start()))
            .collect()
    };
    let systems = |on: bool| -> Vec<(&'static str, String)> {
        [
            "RedisSystem",
            "PostgresSystem",
            "PgvectorSystem",
            "LogsSystem",
            "VectorsSystem",
        ]
        .into_iter()
        .map(|n| (n, if on { block(n) } else { String::new() }))
        .collect()
    };
    // The replica clause of the archive: the one-line `!Sub '...'` of BackupReplica.
    let replica: String = template
        .lines()
        .find(|l| l.trim_start().starts_with("BackupReplica: !If"))
        .and_then(|l| l.split("!Sub '").nth(1))
        .and_then(|l| l.split('\'').next())
        .expect("BackupReplica is a variable of the catalog")
        .replace("${BackupReplicaBucketName}", "backups-replica")
        .replace("${BackupReplicaRegion}", "eu-west-1");
    let fill = |s3: &str,
                table: &str,
                feed: &str,
                optional: Vec<(&'static str, String)>,
                backup: (&str, &str)| {
        let mut t = body.replace("${AWS::StackName}", "stack");
        t = t.replace("${BackupReplica}", backup.0);
        t = t.replace("${TenantTiers}", backup.1);
        for (k, v) in optional {
            t = t.replace(&format!("${{{k}}}"), &v);
        }
        for (k, v) in [
            ("RedisUrl", "rediss://cache.example:6379/0"),
            ("PostgresUrl", "host=db.example user=app dbname=app"),
            ("PgvectorUrl", "host=vec.example user=app dbname=vec"),
            ("TenantLogGroupPrefix", "/app/tenants/"),
            ("VectorBucketName", "rag-vectors"),
        ] {
            t = t.replace(&format!("${{{k}}}"), v);
        }
        for (k, v) in [
            ("LedgerTable", "ledger"),
            ("LegalHoldsTable", "holds"),
            ("CertificateKey", "key-id"),
            ("RoutingTable", "routing"),
            ("MigrationsTable", "migrations"),
            ("DocumentsBucketName", "docs"),
            ("UsageEventsTableName", "usage"),
            ("EraseConcurrency", "8"),
            ("CheckpointBucket", "checkpoints"),
            ("BackupBucket", "backups-bucket"),
            ("CheckpointRetentionDays", "3650"),
            ("UsageEventsChangeFeed", feed),
            ("S3Locations", s3),
            ("TableLocations", table),
        ] {
            t = t.replace(&format!("${{{k}}}"), v);
        }
        assert!(!t.contains("${"), "unfilled placeholder in {t}");
        lifecycle::Catalog::from_toml(&t).expect("the template's catalog")
    };
    let plain = fill("", "", "journal", systems(false), ("", ""));
    stores::wiring::validate(&plain).expect("every product accepts its settings");
    assert_eq!(plain.system_names(), ["backups", "s3", "analytics"]);
    assert!(
        plain.backup.is_some(),
        "the deployed catalog names its backup archive and keys"
    );
    assert!(
        matches!(plain.checkpoints, Some(lifecycle::CheckpointBackend::S3 { ref bucket, .. }) if bucket == "checkpoints"),
        "checkpoints are published to the Object Lock bucket"
    );
    let green = fill(
        "locations = { green = \"docs-green\" }",
        "locations = { green = \"usage-green\" }",
        "streams",
        systems(true),
        (
            &replica,
            r#"acme = "platinum", globex = "gold", initech = "gold""#,
        ),
    );
    let spec = green.backup();
    assert!(
        matches!(&spec.archive, lifecycle::backup::policy::ArchiveBackend::S3 { replica_bucket: Some(b), replica_region: Some(r), .. } if b == "backups-replica" && r == "eu-west-1"),
        "the replica parameters reach the archive: {:?}",
        spec.archive
    );
    let listed = |tier: &str| -> Vec<String> {
        spec.tenants_of(tier)
            .expect("a tier")
            .iter()
            .map(|t| t.to_string())
            .collect()
    };
    assert_eq!(listed("platinum"), ["acme"]);
    assert_eq!(listed("gold"), ["globex", "initech"]);
    assert_eq!(
        green.system_names(),
        [
            "backups",
            "s3",
            "analytics",
            "redis",
            "postgresql",
            "embeddings",
            "cloudwatch",
            "vectors",
        ],
        "every optional system, when its parameter is set"
    );
    stores::wiring::validate(&green).expect("every product accepts its settings");
    let analytics = stores::dynamodb::Config::parse(green.system("analytics").expect("analytics"))
        .expect("a DynamoDB system");
    assert_eq!(
        analytics.change_feed,
        stores::dynamodb::ChangeFeedKind::Streams
    );
    for s in ["s3", "analytics"] {
        let b = &green.system(s).expect(s).settings;
        assert!(format!("{b:?}").contains("-green"), "{s}: {b:?}");
    }
}

#[test]
fn function_mains_are_thin() {
    for f in function_crates() {
        let main = std::fs::read_to_string(root().join("functions").join(&f).join("src/main.rs"))
            .expect("main.rs");
        assert!(
            main.lines().count() < 20,
            "functions/{f}/src/main.rs has {} lines; keep the entry point thin",
            main.lines().count()
        );
    }
}

/// The schedules the template deploys are the tiers' own: each tier's full backups at its
/// `Schedule::expression`, its increments at its recovery point objective, one prune a day,
/// each starting the machine that does it with the tier and kind it names.
#[test]
fn the_sam_template_schedules_each_tier_as_the_catalog_defines_it() {
    let template =
        std::fs::read_to_string(root().join("infra/template.yaml")).expect("infra/template.yaml");
    // Each AWS::Scheduler::Schedule: its expression, target and input.
    let mut resources: Vec<String> = Vec::new();
    for line in template.lines() {
        let top = line.starts_with("  ") && !line.starts_with("   ");
        match resources.last_mut() {
            Some(r) if !top => {
                r.push_str(line);
                r.push('\n');
            }
            _ => resources.push(format!("{line}\n")),
        }
    }
    let schedules: Vec<(String, String, String)> = resources
        .iter()
        .filter(|r| r.contains("Type: AWS::Scheduler::Schedule"))
        .map(|r| {
            let field = |k: &str| -> String {
                r.lines()
                    .find_map(|l| l.trim_start().strip_prefix(k))
                    .map(|v| v.trim().trim_matches('\'').to_owned())
                    .unwrap_or_default()
            };
            (
                field("ScheduleExpression:"),
                field("Arn: !Ref"),
                field("Input:"),
            )
        })
        .collect();
    let has = |expr: &str, target: &str, input: serde_json::Value| {
        schedules.iter().any(|(e, t, i)| {
            e == expr
                && t == target
                && serde_json::from_str::<serde_json::Value>(i).ok().as_ref() == Some(&input)
        })
    };
    let rate = |secs: u64| match secs {
        s if s % 3600 == 0 && s / 3600 == 1 => "rate(1 hour)".to_owned(),
        s if s % 3600 == 0 => format!("rate({} hours)", s / 3600),
        s => format!("rate({} minutes)", s / 60),
    };
    let tiers = lifecycle::backup::policy::default_tiers();
    for tier in &tiers {
        assert!(
            has(
                tier.schedule.expression(),
                "TenantBackupTierStateMachine",
                serde_json::json!({"tier": tier.name, "kind": "full"})
            ),
            "no {} full schedule {} in {schedules:?}",
            tier.name,
            tier.schedule.expression()
        );
        if tier.rpo_seconds > 0 {
            assert!(
                has(
                    &rate(tier.rpo_seconds),
                    "TenantBackupTierStateMachine",
                    serde_json::json!({"tier": tier.name, "kind": "incremental"})
                ),
                "no {} incremental schedule {} in {schedules:?}",
                tier.name,
                rate(tier.rpo_seconds)
            );
        }
    }
    let increments = tiers.iter().filter(|t| t.rpo_seconds > 0).count();
    assert!(
        schedules
            .iter()
            .any(|(_, t, _)| t == "TenantPruneStateMachine"),
        "a prune schedule"
    );
    assert_eq!(
        schedules.len(),
        tiers.len() + increments + 1,
        "no schedule the tiers do not define: {schedules:?}"
    );
}
