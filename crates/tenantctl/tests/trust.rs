//! The trust defects, reproduced from outside as an attacker with access to the data
//! directory or a careless operator would meet them, and the ledger's anchors: named keys
//! and checkpoints published outside the world file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tenantctl(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tenantctl"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("TENANT_CATALOG_FILE")
        .env_remove("TENANT_SIGNING_KEY_FILE")
        .env_remove("TENANT_CHECKPOINT_DIR")
        .output()
        .expect("run tenantctl")
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf8 path")
}

/// A fresh copy of one demo world. The demo runs once per test binary: sixteen demos
/// with their migration workloads at once on two cores made the migrations' latency gates
/// (which these tests do not examine) roll back for load alone.
fn demo() -> (tempfile::TempDir, PathBuf) {
    static TEMPLATE: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let template = TEMPLATE.get_or_init(|| {
        let world = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("trust-demo-{}", std::process::id()))
            .join("w");
        let _ = std::fs::remove_dir_all(&world);
        let o = tenantctl(&world, &["demo", "--scale", "0.05"]);
        if o.status.success() {
            Ok(world)
        } else {
            Err(format!("{}{}", out(&o), err(&o)))
        }
    });
    let template = match template {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    let dir = tempfile::tempdir().expect("dir");
    let world = dir.path().join("w");
    copy_dir(template, &world);
    (dir, world)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

/// Erases `tenant_nobody` (who holds nothing, so the request succeeds) under `id`.
fn erase_nobody(dir: &Path, world: &Path, id: &str) -> Output {
    let req = dir.join(format!("{id}.json"));
    let body = serde_json::json!({"request_id": id, "tenant_id": "tenant_nobody", "reason_code": "objection", "systems": ["redis"]});
    std::fs::write(&req, body.to_string()).expect("request");
    tenantctl(world, &["erase", "--request", p(&req)])
}

fn raw(world: &Path, sql: &str) {
    let w = stores::embedded::World::open(&world.join("world.db")).expect("world");
    w.execute_raw(sql, &[]).expect("sql");
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn a_refused_request_writes_no_file_anywhere() {
    let (dir, world) = demo();
    let cert = world.join("certificates/gdpr_req_20250118_001.json");
    let before = std::fs::read(&cert).expect("certificate");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").expect("victim");
    for id in [
        p(&victim).to_owned(),
        "../certificates/gdpr_req_20250118_001".to_owned(),
        "nul\u{0}byte".to_owned(),
    ] {
        let req = dir.path().join("req.json");
        let body = serde_json::json!({"request_id": id, "tenant_id": "tenant_001_acme_corp", "reason": "x", "systems": ["redis"]});
        std::fs::write(&req, body.to_string()).expect("req");
        let listing = files_under(&world).len();
        let o = tenantctl(&world, &["erase", "--request", p(&req)]);
        assert!(!o.status.success());
        assert!(err(&o).contains("InvalidRequest"), "{id:?}: {}", err(&o));
        assert_eq!(err(&o).trim().lines().count(), 1, "{}", err(&o));
        assert_eq!(files_under(&world).len(), listing, "{id:?} wrote a file");
        let asl =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../statemachines/gdpr-erasure.asl.json");
        if !id.contains('\u{0}') {
            let o = tenantctl(
                &world,
                &["sim", "run", p(&asl), "--input", p(&req), "--name", &id],
            );
            assert!(!o.status.success());
            assert!(err(&o).contains("InvalidRequest"), "{}", err(&o));
        }
    }
    assert_eq!(std::fs::read(&victim).expect("victim"), b"precious");
    assert_eq!(
        std::fs::read(&cert).expect("certificate"),
        before,
        "the real certificate is intact"
    );
    assert!(!dir.path().join("x").exists());
}

#[test]
fn read_only_commands_never_create_a_world() {
    let dir = tempfile::tempdir().expect("dir");
    let typo = dir.path().join("tenant-wrold");
    for args in [
        vec!["ledger", "verify"],
        vec!["ledger", "public-key"],
        vec!["ledger", "show"],
        vec!["count", "--tenant", "t1"],
        vec!["cert", "verify", "/nonexistent.json"],
        vec!["hold", "list", "--tenant", "t1"],
        vec!["migrate", "status", "t1"],
    ] {
        let o = tenantctl(&typo, &args);
        assert!(!o.status.success(), "{args:?} succeeded on a missing world");
        assert!(
            err(&o).contains("no world at") || err(&o).contains("cannot read /nonexistent.json"),
            "{args:?}: {}",
            err(&o)
        );
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
}

#[test]
fn after_the_demo_the_plain_commands_act_on_its_world() {
    // The default data dir, as a new user runs it: from a working directory of their own.
    let cwd = tempfile::tempdir().expect("dir");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tenantctl"))
            .args(args)
            .current_dir(cwd.path())
            .env_remove("TENANT_DATA_DIR")
            .env_remove("TENANT_CATALOG_FILE")
            .output()
            .expect("run")
    };
    let o = run(&["demo", "--scale", "0.05"]);
    assert!(o.status.success(), "{}", err(&o));
    let v = run(&[
        "ledger",
        "verify",
        "--trust",
        ".tenant-world/ledger-public-key.pem",
    ]);
    assert!(v.status.success(), "{}", err(&v));
    assert!(
        out(&v).contains("chain gdpr-erasure: 3 entries verified"),
        "{}",
        out(&v)
    );
    let k = run(&["ledger", "public-key"]);
    let published = std::fs::read_to_string(cwd.path().join(".tenant-world/ledger-public-key.pem"))
        .expect("pem");
    assert_eq!(out(&k), published, "the key that signed, not a new one");
    // A second demo replaces its own world, but never a world it did not make.
    let o = run(&["demo", "--scale", "0.05"]);
    assert!(o.status.success(), "{}", err(&o));
    let mine = cwd.path().join("mine");
    std::fs::create_dir_all(&mine).expect("dir");
    std::fs::write(mine.join("world.db"), b"").expect("file");
    let o = run(&["--data-dir", "mine", "demo"]);
    assert!(!o.status.success());
    assert!(err(&o).contains("did not make"), "{}", err(&o));
    assert!(mine.join("world.db").exists());
}

#[test]
fn accepted_input_that_should_not_be() {
    let (dir, world) = demo();
    // A key twice: refused, nothing erased.
    let req = dir.path().join("dup.json");
    std::fs::write(&req, r#"{"request_id": "r-dup", "tenant_id": "tenant_001_acme_corp", "tenant_id": "tenant_002_globex", "reason": "x", "systems": ["redis"]}"#).expect("w");
    let before = out(&tenantctl(
        &world,
        &["count", "--tenant", "tenant_002_globex"],
    ));
    let o = tenantctl(&world, &["erase", "--request", p(&req)]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("duplicate key \"tenant_id\""),
        "{}",
        err(&o)
    );
    assert_eq!(
        out(&tenantctl(
            &world,
            &["count", "--tenant", "tenant_002_globex"]
        )),
        before
    );
    // A certificate with a key twice does not verify.
    let cert = world.join("certificates/gdpr_req_20250118_001.json");
    let text = std::fs::read_to_string(&cert).expect("cert");
    let dup = text.replacen(
        "\"certificate\": {",
        "\"certificate\": {\"outcome\": \"refused\",",
        1,
    );
    let dup_path = dir.path().join("dup-cert.json");
    std::fs::write(&dup_path, dup).expect("w");
    let o = tenantctl(&world, &["cert", "verify", p(&dup_path)]);
    assert!(!o.status.success());
    assert!(err(&o).contains("duplicate key"), "{}", err(&o));
    // Endless input stops at the cap.
    let o = tenantctl(&world, &["erase", "--request", "/dev/zero"]);
    assert!(!o.status.success());
    assert!(err(&o).contains("larger than"), "{}", err(&o));
    let o = tenantctl(
        &world,
        &["--catalog", "/dev/zero", "count", "--tenant", "t1"],
    );
    assert!(!o.status.success());
    assert!(err(&o).contains("larger than"), "{}", err(&o));
    // A closed pipe is not a crash.
    let sh = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; '{}' --data-dir '{}' count --tenant tenant_001_acme_corp | head -1; echo \"status=${{PIPESTATUS[0]}}\"",
            env!("CARGO_BIN_EXE_tenantctl"),
            world.display()
        ))
        .output()
        .expect("sh");
    let text = out(&sh);
    assert!(!text.contains("status=101"), "panicked: {text}{}", err(&sh));
    assert!(!err(&sh).contains("panicked"), "{}", err(&sh));
}

#[test]
fn hold_ids_are_ids_and_free_text_never_reaches_the_ledger() {
    let (_dir, world) = demo();
    for bad in [
        "line\nbreak",
        "\u{1b}[31mred",
        "Jane Doe 1980-02-03",
        &"x".repeat(100_000),
    ] {
        let o = tenantctl(
            &world,
            &[
                "hold",
                "place",
                "--tenant",
                "tenant_001_acme_corp",
                "--hold-id",
                bad,
                "--reason",
                "r",
            ],
        );
        assert!(!o.status.success(), "{bad:?} was accepted");
        assert!(err(&o).contains("hold_id"), "{}", err(&o));
    }
    // The demo's request reasons are certified only as digests.
    let show = out(&tenantctl(&world, &["ledger", "show", "--limit", "100"]));
    assert!(
        !show.contains("Customer offboarding"),
        "a reason reached the ledger"
    );
    assert!(
        !show.contains("litigation"),
        "a hold reason reached the ledger"
    );
    assert!(show.contains("text_sha256"));
}

/// Verifies with the demo's published key and its published checkpoints.
fn audit(world: &Path, trust: &Path) -> Output {
    tenantctl(world, &["ledger", "verify", "--trust", p(trust)])
}

fn pem(world: &Path) -> PathBuf {
    world.join("ledger-public-key.pem")
}

#[test]
fn truncation_with_a_fixed_head_is_caught_by_the_checkpoint() {
    let (dir, world) = demo();
    let trust = dir.path().join("auditor.pem");
    std::fs::copy(pem(&world), &trust).expect("copy");
    // Drop the last entry and point the head at the one before, as a careful attacker would.
    raw(
        &world,
        "DELETE FROM ledger_entries WHERE chain = 'gdpr-erasure' AND seq = 2",
    );
    raw(
        &world,
        "DELETE FROM ledger_requests WHERE chain = 'gdpr-erasure' AND seq = 2",
    );
    raw(
        &world,
        "UPDATE ledger_heads SET seq = 1, hash = (SELECT entry_hash FROM ledger_entries WHERE chain = 'gdpr-erasure' AND seq = 1), frontier = '[]' WHERE chain = 'gdpr-erasure'",
    );
    let o = audit(&world, &trust);
    assert!(!o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("truncated"), "{}", out(&o));
}

#[test]
fn a_deleted_chain_is_caught_by_the_checkpoint() {
    let (dir, world) = demo();
    let trust = dir.path().join("auditor.pem");
    std::fs::copy(pem(&world), &trust).expect("copy");
    for t in [
        "ledger_entries",
        "ledger_heads",
        "ledger_requests",
        "ledger_nodes",
    ] {
        raw(
            &world,
            &format!("DELETE FROM {t} WHERE chain = 'gdpr-erasure'"),
        );
    }
    let o = audit(&world, &trust);
    assert!(!o.status.success());
    assert!(
        out(&o).contains("chain gdpr-erasure") && out(&o).contains("deleted"),
        "{}",
        out(&o)
    );
}

#[test]
fn a_swapped_key_and_a_re_signed_chain_are_caught_by_trust() {
    let (dir, world) = demo();
    let trust = dir.path().join("auditor.pem");
    std::fs::copy(pem(&world), &trust).expect("copy");
    // The attacker replaces the key, throws the chain away and re-issues it, and even
    // republishes checkpoints in a directory of their own.
    std::fs::remove_file(world.join("signing-key.pem")).expect("rm key");
    for t in [
        "ledger_entries",
        "ledger_heads",
        "ledger_requests",
        "ledger_nodes",
        "request_claims",
        "request_progress",
    ] {
        raw(&world, &format!("DELETE FROM {t}"));
    }
    std::fs::remove_dir_all(world.join("checkpoints")).expect("rm checkpoints");
    let o = erase_nobody(dir.path(), &world, "forged");
    assert!(o.status.success(), "{}", err(&o));
    // Trusting what sits beside the ledger, it "verifies"; trusting the auditor's key, not.
    assert!(tenantctl(&world, &["ledger", "verify"]).status.success());
    let o = audit(&world, &trust);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("no signature by a trusted key")
            || out(&o).contains("unknown signing key"),
        "{}{}",
        out(&o),
        err(&o)
    );
}

#[test]
fn an_older_key_inserted_into_the_world_never_signs_and_is_never_trusted() {
    use p256::pkcs8::EncodePrivateKey as _;
    let (dir, world) = demo();
    let trust = dir.path().join("auditor.pem");
    std::fs::copy(pem(&world), &trust).expect("copy");
    let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let text = key.to_pkcs8_pem(p256::pkcs8::LineEnding::LF).expect("pem");
    let w = stores::embedded::World::open(&world.join("world.db")).expect("world");
    w.execute_raw(
        "INSERT INTO signing_keys (key_id, pkcs8_pem, created_at) VALUES ('p256:0000', ?1, '1970-01-01T00:00:00Z')",
        &[&text.as_str()],
    )
    .expect("insert");
    let o = erase_nobody(dir.path(), &world, "after-insert");
    assert!(o.status.success(), "{}", err(&o));
    let o = audit(&world, &trust);
    assert!(
        o.status.success(),
        "the real key kept signing: {}{}",
        out(&o),
        err(&o)
    );
}

#[test]
fn a_changed_recorded_at_is_caught() {
    let (dir, world) = demo();
    let trust = dir.path().join("auditor.pem");
    std::fs::copy(pem(&world), &trust).expect("copy");
    // Change the tail entry's time and recompute every stored hash so the chain links.
    let w = stores::embedded::World::open(&world.join("world.db")).expect("world");
    let entries = stores::embedded::LocalLedger::new(w.clone());
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let tail = rt
        .block_on(ports::Ledger::entries(&entries, "gdpr-erasure", 2, 1))
        .expect("entries")
        .remove(0);
    let mut v: serde_json::Value = serde_json::from_str(&tail.json).expect("json");
    v["recorded_at"] = "2020-01-01T00:00:00Z".into();
    v.as_object_mut().expect("obj").remove("entry_hash");
    let h = lifecycle::ledger::entry_hash(&v).expect("hash");
    v["entry_hash"] = h.clone().into();
    let body = v.to_string();
    w.execute_raw(
        "UPDATE ledger_entries SET body = ?1, entry_hash = ?2 WHERE chain = 'gdpr-erasure' AND seq = 2",
        &[&body, &h],
    )
    .expect("tamper");
    w.execute_raw(
        "UPDATE ledger_heads SET hash = ?1 WHERE chain = 'gdpr-erasure'",
        &[&h],
    )
    .expect("head");
    let o = audit(&world, &trust);
    assert!(!o.status.success());
    assert!(out(&o).contains("recorded_at"), "{}", out(&o));
}

#[test]
fn receipts_verify_offline_and_fail_on_any_changed_byte() {
    let (dir, world) = demo();
    let cert = world.join("certificates/gdpr_req_20250118_002.json");
    let proof = dir.path().join("r.tlog-proof");
    let o = tenantctl(&world, &["cert", "prove", p(&cert), "--out", p(&proof)]);
    assert!(o.status.success(), "{}", err(&o));
    // Offline: a directory with no world at all, only the key, the certificate, the proof.
    let offline = dir.path().join("nothing-here");
    let v = tenantctl(
        &offline,
        &[
            "cert",
            "verify",
            p(&cert),
            "--trust",
            p(&pem(&world)),
            "--receipt",
            p(&proof),
        ],
    );
    assert!(v.status.success(), "{}", err(&v));
    assert!(out(&v).contains("receipt valid"));
    assert!(!offline.exists());
    let text = std::fs::read(&proof).expect("proof");
    for pos in (0..text.len()).step_by(7) {
        let mut t = text.clone();
        t[pos] ^= 0x01;
        let bad = dir.path().join("bad.tlog-proof");
        std::fs::write(&bad, &t).expect("w");
        let v = tenantctl(
            &offline,
            &[
                "cert",
                "verify",
                p(&cert),
                "--trust",
                p(&pem(&world)),
                "--receipt",
                p(&bad),
            ],
        );
        assert!(
            !v.status.success(),
            "byte {pos} changed and the receipt verified"
        );
    }
    // The receipt of one certificate does not prove another.
    let other = world.join("certificates/gdpr_req_20250118_001.json");
    let v = tenantctl(
        &offline,
        &[
            "cert",
            "verify",
            p(&other),
            "--trust",
            p(&pem(&world)),
            "--receipt",
            p(&proof),
        ],
    );
    assert!(!v.status.success());
}

#[test]
fn a_rotated_key_is_trusted_through_the_ledger_and_checkpoints_stay_consistent() {
    let (dir, world) = demo();
    let old_pem = dir.path().join("old.pem");
    std::fs::copy(pem(&world), &old_pem).expect("copy");
    let first = std::fs::read_dir(world.join("checkpoints/gdpr-erasure"))
        .expect("dir")
        .flatten()
        .next()
        .expect("a checkpoint")
        .path();
    let o = tenantctl(&world, &["ledger", "rotate-key"]);
    assert!(o.status.success(), "{}", err(&o));
    let o = erase_nobody(dir.path(), &world, "after-rotation");
    assert!(o.status.success(), "{}", err(&o));
    // The auditor still names only the old key: the rotation entry it signed carries trust.
    let o = audit(&world, &old_pem);
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    assert!(
        out(&o).contains("chain ledger-keys: 1 entries verified"),
        "{}",
        out(&o)
    );
    let o = tenantctl(
        &world,
        &[
            "ledger",
            "consistency",
            "--old",
            p(&first),
            "--trust",
            p(&old_pem),
        ],
    );
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    assert!(out(&o).contains("extends checkpoint 3"), "{}", out(&o));
    // Without --trust the world's own keys (both sides of the rotation) are used.
    let old_cert = world.join("certificates/gdpr_req_20250118_001.json");
    let o = tenantctl(&world, &["cert", "verify", p(&old_cert)]);
    assert!(o.status.success(), "{}", err(&o));
    let o = tenantctl(
        &world,
        &[
            "cert",
            "prove",
            p(&old_cert),
            "--out",
            p(&dir.path().join("x.tlog-proof")),
        ],
    );
    assert!(o.status.success(), "{}", err(&o));
    // The key file is not world-readable and not in the world.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(world.join("signing-key.pem"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0);
    }
}

#[test]
fn two_first_commands_on_an_empty_data_dir_make_one_key() {
    for _ in 0..5 {
        let dir = tempfile::tempdir().expect("dir");
        let world = dir.path().join("w");
        let children: Vec<_> = (0..4)
            .map(|i| {
                let req = dir.path().join(format!("r{i}.json"));
                std::fs::write(&req, format!(r#"{{"request_id": "first-{i}", "tenant_id": "tenant_{i}", "reason_code": "objection", "systems": ["redis"]}}"#)).expect("w");
                Command::new(env!("CARGO_BIN_EXE_tenantctl"))
                    .arg("--data-dir")
                    .arg(&world)
                    .args(["erase", "--request", p(&req)])
                    .env_remove("TENANT_SIGNING_KEY_FILE")
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("spawn")
            })
            .collect();
        for c in children {
            let o = c.wait_with_output().expect("wait");
            assert!(o.status.success(), "{}", err(&o));
        }
        let key = tenantctl(&world, &["ledger", "public-key"]);
        let trust = dir.path().join("k.pem");
        std::fs::write(&trust, out(&key)).expect("w");
        let v = audit(&world, &trust);
        assert!(
            v.status.success(),
            "a certificate by a second key: {}{}",
            out(&v),
            err(&v)
        );
        assert!(out(&v).contains("4 entries verified"), "{}", out(&v));
    }
}

// Found by trying to break the above from outside (a second, hostile review).

#[test]
fn deleting_the_checkpoints_does_not_hide_a_truncation_from_an_audit() {
    let (dir, world) = demo();
    let trust = dir.path().join("auditor.pem");
    std::fs::copy(pem(&world), &trust).expect("copy");
    raw(
        &world,
        "DELETE FROM ledger_entries WHERE chain = 'gdpr-erasure' AND seq = 2",
    );
    raw(
        &world,
        "UPDATE ledger_heads SET seq = 1, hash = (SELECT entry_hash FROM ledger_entries WHERE chain = 'gdpr-erasure' AND seq = 1), frontier = '[]' WHERE chain = 'gdpr-erasure'",
    );
    std::fs::remove_dir_all(world.join("checkpoints")).expect("rm");
    let o = audit(&world, &trust);
    assert!(!o.status.success(), "{}", out(&o));
    assert!(err(&o).contains("no checkpoint to meet"), "{}", err(&o));
}

#[test]
fn a_retired_key_put_back_signs_nothing_an_audit_accepts() {
    let (dir, world) = demo();
    let old_pem = dir.path().join("old.pem");
    std::fs::copy(pem(&world), &old_pem).expect("copy");
    let old_key = dir.path().join("old-key.pem");
    std::fs::copy(world.join("signing-key.pem"), &old_key).expect("copy");
    assert!(
        tenantctl(&world, &["ledger", "rotate-key"])
            .status
            .success()
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::copy(&old_key, world.join("signing-key.pem")).expect("put back");
    let _ = erase_nobody(dir.path(), &world, "by-retired-key");
    let o = audit(&world, &old_pem);
    assert!(!o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("rotated away"), "{}{}", out(&o), err(&o));
}

#[test]
fn a_request_id_certified_twice_is_found_even_when_the_claims_are_gone() {
    let (dir, world) = demo();
    let trust = dir.path().join("auditor.pem");
    std::fs::copy(pem(&world), &trust).expect("copy");
    for t in ["ledger_requests", "request_claims", "request_progress"] {
        raw(
            &world,
            &format!("DELETE FROM {t} WHERE request_id = 'gdpr_req_20250118_002'"),
        );
    }
    let o = erase_nobody(dir.path(), &world, "gdpr_req_20250118_002");
    assert!(o.status.success(), "{}", err(&o));
    let o = audit(&world, &trust);
    assert!(!o.status.success());
    assert!(out(&o).contains("certified once"), "{}", out(&o));
}

#[test]
fn a_planted_checkpoint_of_a_huge_size_is_refused_without_a_crash() {
    let (_dir, world) = demo();
    let planted = world.join("checkpoints/gdpr-erasure/18446744073709551615.checkpoint");
    std::fs::write(
        &planted,
        "tenant-lifecycle/local/gdpr-erasure\n18446744073709551615\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u{2014} tenant-lifecycle/local/gdpr-erasure AAAAAAAAAAAAAAAAAAAA\n",
    )
    .expect("plant");
    let cert = world.join("certificates/gdpr_req_20250118_001.json");
    for args in [
        vec!["cert", "prove", p(&cert)],
        vec!["ledger", "checkpoint"],
        vec!["ledger", "verify", "--trust", p(&pem(&world))],
    ] {
        let o = tenantctl(&world, &args);
        assert!(!o.status.success(), "{args:?}");
        assert_ne!(o.status.code(), Some(101), "{args:?} panicked: {}", err(&o));
        assert!(
            err(&o).contains("signed") || err(&o).contains("trusted"),
            "{args:?}: {}",
            err(&o)
        );
    }
}

#[test]
fn an_entry_file_is_checked_as_an_entry_and_checkpoint_needs_a_world() {
    let (dir, world) = demo();
    let show = out(&tenantctl(&world, &["ledger", "show", "--limit", "1"]));
    let mut entry: serde_json::Value =
        serde_json::from_str(show.lines().next().expect("entry")).expect("json");
    let good = dir.path().join("entry.json");
    std::fs::write(&good, entry.to_string()).expect("w");
    assert!(
        tenantctl(&world, &["cert", "verify", p(&good)])
            .status
            .success()
    );
    entry["tenant_id"] = "tenant_forged".into();
    let bad = dir.path().join("bad-entry.json");
    std::fs::write(&bad, entry.to_string()).expect("w");
    assert!(
        !tenantctl(&world, &["cert", "verify", p(&bad)])
            .status
            .success()
    );
    let missing = dir.path().join("missing");
    assert!(
        !tenantctl(&missing, &["ledger", "checkpoint"])
            .status
            .success()
    );
    assert!(!missing.exists());
    let o = tenantctl(
        &world,
        &["ledger", "show", "--from", "18446744073709551615"],
    );
    assert!(!o.status.success());
}
