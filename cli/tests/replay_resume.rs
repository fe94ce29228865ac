//! `bots replay --checkpoint` then `bots replay --resume`: a log replayed in two halves gives exactly
//! the output of the whole log replayed at once.

mod common;

use std::path::Path;
use std::process::Command;

fn bots(args: &[&str]) -> std::process::Output {
    Command::new(common::bots_bin()).args(args).output().expect("bots runs")
}

fn ok(out: std::process::Output) {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn two_halves_equal_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let data = common::data_dir();
    let pool = data.join("sample_pool.jsonl");
    let log = std::fs::read_to_string(data.join("sample_log.jsonl")).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "the sample log has several steps");
    let half = lines.len() / 2;
    std::fs::write(p("first.jsonl"), lines[..half].join("\n")).unwrap();
    std::fs::write(p("second.jsonl"), lines[half..].join("\n")).unwrap();
    let pool = pool.to_str().unwrap();
    let whole_log = data.join("sample_log.jsonl");

    ok(bots(&[
        "replay",
        "--pool",
        pool,
        "--log",
        whole_log.to_str().unwrap(),
        "--out",
        &p("whole.jsonl"),
        "--checkpoint",
        &p("whole.ckpt"),
    ]));
    ok(bots(&[
        "replay",
        "--pool",
        pool,
        "--log",
        &p("first.jsonl"),
        "--out",
        &p("a.jsonl"),
        "--checkpoint",
        &p("half.ckpt"),
    ]));
    ok(bots(&[
        "replay",
        "--resume",
        &p("half.ckpt"),
        "--log",
        &p("second.jsonl"),
        "--out",
        &p("b.jsonl"),
        "--checkpoint",
        &p("b.ckpt"),
    ]));

    let whole = std::fs::read(p("whole.jsonl")).unwrap();
    assert_eq!(whole, std::fs::read(p("b.jsonl")).unwrap(), "two halves differ from the whole");
    assert_ne!(whole, std::fs::read(p("a.jsonl")).unwrap(), "the first half alone must differ");
    // The checkpoints of both routes hold the same state.
    let (c1, s1) = bots::checkpoint::load(Path::new(&p("whole.ckpt"))).unwrap();
    let (c2, s2) = bots::checkpoint::load(Path::new(&p("b.ckpt"))).unwrap();
    assert_eq!((c1, s1), (c2, s2));

    // Resuming with the wrong log (starting at step 0 again) is refused and writes nothing.
    let out = bots(&["replay", "--resume", &p("half.ckpt"), "--log", &p("first.jsonl"), "--out", &p("bad.jsonl")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("step"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!dir.path().join("bad.jsonl").exists());
    // --resume and --pool together are refused.
    let out = bots(&[
        "replay",
        "--resume",
        &p("half.ckpt"),
        "--pool",
        pool,
        "--log",
        &p("second.jsonl"),
        "--out",
        &p("x.jsonl"),
    ]);
    assert!(!out.status.success());
}
