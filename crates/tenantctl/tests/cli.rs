//! The command line as a user meets it: exit codes, one-line reasons, files it writes.

use std::path::Path;
use std::process::{Command, Output};

fn tenantctl(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tenantctl"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("TENANT_CATALOG_FILE")
        .output()
        .expect("run tenantctl")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn demo_then_verify_then_tamper() {
    let dir = tempfile::tempdir().expect("dir");
    let out = tenantctl(dir.path(), &["demo", "--scale", "0.2"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("EXECUTION SUCCEEDED"));
    assert!(text.contains("refused with LegalHoldActive"));
    assert!(text.contains("already certified"));
    assert!(
        text.contains("3 entries, every hash, link, signature and Merkle root valid"),
        "{text}"
    );

    let demo = dir.path().to_path_buf();
    let ok = tenantctl(&demo, &["ledger", "verify"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(stdout(&ok).contains("chain gdpr-erasure: 3 entries verified"));

    let cert = demo.join("certificates/gdpr_req_20250118_001.json");
    let v = tenantctl(&demo, &["cert", "verify", cert.to_str().expect("utf8")]);
    assert!(v.status.success(), "{}", stderr(&v));
    assert!(stdout(&v).contains("outcome erased"));

    // openssl with the exported canonical body, signature and published key.
    let export = dir.path().join("export");
    let e = tenantctl(
        &demo,
        &[
            "cert",
            "export",
            cert.to_str().expect("utf8"),
            "--out-dir",
            export.to_str().expect("utf8"),
        ],
    );
    assert!(e.status.success(), "{}", stderr(&e));
    let ssl = Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-verify",
            "key.pem",
            "-signature",
            "sig.der",
            "body.json",
        ])
        .current_dir(&export)
        .output()
        .expect("openssl");
    assert!(ssl.status.success() && stdout(&ssl).contains("Verified OK"));

    // A certificate edited by hand no longer verifies.
    let text = std::fs::read_to_string(&cert).expect("read");
    let forged = text.replacen(
        "\"records_erased_total\": ",
        "\"records_erased_total\": 1",
        1,
    );
    assert_ne!(forged, text);
    let forged_path = dir.path().join("forged.json");
    std::fs::write(&forged_path, forged).expect("write");
    let bad = tenantctl(
        &demo,
        &["cert", "verify", forged_path.to_str().expect("utf8")],
    );
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("does not verify"), "{}", stderr(&bad));

    // One byte of a stored ledger entry changed: verify names its seq, exits non-zero.
    let world = stores::embedded::World::open(&demo.join("world.db")).expect("world");
    world
        .execute_raw("UPDATE ledger_entries SET body = replace(body, 'tenant_005', 'tenant_006') WHERE seq = 1", &[])
        .expect("tamper");
    let broken = tenantctl(&demo, &["ledger", "verify"]);
    assert!(!broken.status.success());
    assert!(
        stdout(&broken).contains("FAILED at seq 1"),
        "{}",
        stdout(&broken)
    );
    let err = stderr(&broken);
    assert_eq!(err.trim().lines().count(), 1, "one-line reason: {err}");
    assert!(err.contains("seq 1"));
}

#[test]
fn bad_input_gets_a_one_line_actionable_error() {
    let dir = tempfile::tempdir().expect("dir");
    let req = dir.path().join("bad.json");
    std::fs::write(
        &req,
        r#"{"request_id": "r1", "tenant_id": "../etc", "reason": "x", "systems": ["s3"]}"#,
    )
    .expect("write");
    let out = tenantctl(
        dir.path(),
        &["erase", "--request", req.to_str().expect("utf8")],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("InvalidRequest") && err.contains("tenant_id"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let missing = tenantctl(dir.path(), &["erase", "--request", "/nonexistent.json"]);
    assert!(stderr(&missing).contains("cannot read /nonexistent.json"));

    let asl = dir.path().join("m.asl.json");
    std::fs::write(&asl, r#"{"StartAt": "R", "States": {"R": {"Type": "Map", "ItemReader": {}, "ItemProcessor": {"StartAt": "x", "States": {"x": {"Type": "Succeed"}}}, "End": true}}}"#).expect("write");
    let input = dir.path().join("in.json");
    std::fs::write(&input, "{}").expect("write");
    let out = tenantctl(
        dir.path(),
        &[
            "sim",
            "run",
            asl.to_str().expect("utf8"),
            "--input",
            input.to_str().expect("utf8"),
        ],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("\"R\"") && err.contains("ItemReader"), "{err}");

    let hold = tenantctl(
        dir.path(),
        &["hold", "release", "--tenant", "t1", "--hold-id", "nope"],
    );
    assert!(!hold.status.success());
    assert!(stderr(&hold).contains("no active hold nope"));

    // A tier name that is a path is refused before anything is written anywhere.
    fn all_files(p: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                all_files(&e.path(), out);
            }
            out.push(e.path());
        }
    }
    let mut before = Vec::new();
    all_files(dir.path(), &mut before);
    for tier in ["../../outside/x", "", "/etc/passwd", "a b"] {
        let out = tenantctl(dir.path(), &["backup", "tier", tier]);
        assert!(!out.status.success(), "{tier:?}");
        let err = stderr(&out);
        assert!(err.contains("tier name"), "{tier:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    let mut after = Vec::new();
    all_files(dir.path(), &mut after);
    assert_eq!(before, after, "nothing written");
}

#[test]
fn sim_run_writes_the_history_and_holds_survive_between_commands() {
    let dir = tempfile::tempdir().expect("dir");
    let place = tenantctl(
        dir.path(),
        &[
            "hold",
            "place",
            "--tenant",
            "tenant_x",
            "--hold-id",
            "H-1",
            "--reason",
            "audit",
        ],
    );
    assert!(place.status.success(), "{}", stderr(&place));
    let list = tenantctl(dir.path(), &["hold", "list", "--tenant", "tenant_x"]);
    assert!(stdout(&list).contains("H-1"));

    let req = dir.path().join("req.json");
    std::fs::write(&req, r#"{"request_id": "req_x", "tenant_id": "tenant_x", "reason": "offboarding", "systems": ["redis"]}"#).expect("write");
    let hist = dir.path().join("h.json");
    let asl =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../statemachines/gdpr-erasure.asl.json");
    let out = tenantctl(
        dir.path(),
        &[
            "sim",
            "run",
            asl.to_str().expect("utf8"),
            "--input",
            req.to_str().expect("utf8"),
            "--history",
            hist.to_str().expect("utf8"),
        ],
    );
    assert!(!out.status.success(), "held: refused");
    assert!(stderr(&out).contains("LegalHoldActive"));
    // The result is the last line of stdout, as JSON, for scripts.
    let last: serde_json::Value =
        serde_json::from_str(stdout(&out).lines().last().expect("a result line"))
            .expect("the last line is JSON");
    assert_eq!(last["status"], "FAILED");
    assert_eq!(last["error"], "LegalHoldActive");
    let h: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&hist).expect("history")).expect("json");
    assert_eq!(h["status"], "FAILED");
    assert!(
        h["events"]
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["type"] == "FailStateEntered")
    );
    let ledger = tenantctl(dir.path(), &["ledger", "show"]);
    assert!(stdout(&ledger).contains("\"outcome\":\"refused\""));
}
