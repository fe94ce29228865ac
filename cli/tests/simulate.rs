//! `bots simulate` end to end: the real binary on shrunk worlds (every selector, every named world,
//! world files with and without references, the plot, JSON) and its refusal of an unknown world.

mod common;

use std::process::{Command, Output};

use common::bots_bin;

fn simulate(args: &[&str]) -> Output {
    Command::new(bots_bin()).arg("simulate").args(args).output().expect("run bots simulate")
}

fn json(args: &[&str]) -> serde_json::Value {
    let out = simulate(&[args, &["--json"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("one JSON document on stdout")
}

/// Without `--world`, every named world runs, each with every selector; the same seed gives the
/// same numbers (all but the timings).
#[test]
fn all_named_worlds_every_selector_deterministic() {
    let args = ["--tasks", "1500", "--steps", "25", "--seed", "3"];
    let mut a = json(&args);
    let worlds = a["worlds"].as_array().unwrap();
    let names: Vec<&str> = worlds.iter().map(|w| w["world"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["informative", "misleading", "small-pool", "no-references", "misleading-embeddings"]);
    let shares: Vec<f64> = worlds.iter().map(|w| w["world"]["append_share"].as_f64().unwrap()).collect();
    assert_eq!(shares, [0.0, 0.0, 0.0, 0.10000000149011612, 0.0]);
    for w in worlds {
        assert_eq!(w["world"]["tasks"], 1500);
        assert_eq!(w["world"]["steps"], 25);
        let sel: Vec<&str> = w["selectors"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        let skipped: Vec<&str> = w["skipped"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        // Each world runs the selectors it has the evidence for and names the others.
        let (runs, skips): (&[&str], &[&str]) = match w["world"]["name"].as_str().unwrap() {
            "small-pool" => (
                &["random", "bots", "bots-explicit", "bots-implicit", "bots-neighbours", "bots-combined", "oracle"],
                &[],
            ),
            "no-references" | "misleading-embeddings" => {
                (&["random", "bots-explicit", "bots-neighbours", "oracle"], &["bots", "bots-implicit", "bots-combined"])
            }
            _ => {
                (&["random", "bots", "bots-explicit", "bots-implicit", "oracle"], &["bots-neighbours", "bots-combined"])
            }
        };
        assert_eq!((&sel[..], &skipped[..]), (runs, skips));
        assert_eq!(w["selectors"][0]["ttb"], 1.0);
        // A Brier row per implicit source.
        for s in w["selectors"].as_array().unwrap() {
            let sources: Vec<&str> =
                s["brier"].as_array().unwrap().iter().map(|b| b["source"].as_str().unwrap()).collect();
            let expected: &[&str] = match s["name"].as_str().unwrap() {
                "bots" | "bots-implicit" => &["references"],
                "bots-neighbours" => &["neighbours"],
                "bots-combined" => &["references", "neighbours"],
                _ => &[],
            };
            assert_eq!(sources, expected, "{s}");
            // The appended tasks' informed start: only `no-references` appends (10% at step 250 of
            // 500, so 150 tasks at step 12 of 25 here), and only implicit-evidence selectors report it.
            let world = w["world"]["name"].as_str().unwrap();
            let appended = &s["appended"];
            if world == "no-references" && s["name"] == "bots-neighbours" {
                assert_eq!(
                    (&appended["source"], &appended["tasks"], &appended["step"]),
                    (&"neighbours".into(), &150.into(), &12.into()),
                    "{s}"
                );
                let (brier, prior) = (appended["brier"].as_f64().unwrap(), appended["prior"].as_f64().unwrap());
                assert!((prior - 0.25).abs() < 1e-9 && brier > 0.0 && brier < prior, "{s}");
            } else {
                assert!(appended.is_null(), "{s}");
            }
        }
        for s in w["selectors"].as_array().unwrap() {
            let acc = s["final_accuracy"].as_f64().unwrap();
            let etr = s["etr"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&acc) && (0.0..=1.0).contains(&etr), "{s}");
        }
    }
    let mut b = json(&args);
    for doc in [&mut a, &mut b] {
        for w in doc["worlds"].as_array_mut().unwrap() {
            for s in w["selectors"].as_array_mut().unwrap() {
                s.as_object_mut().unwrap().remove("select_ms");
            }
        }
    }
    assert_eq!(a, b);
}

/// A world file (here YAML) runs like a named world, the table names it, and the plot is a PNG.
#[test]
fn world_file_table_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("tiny.yaml");
    std::fs::write(
        &world,
        "name: tiny\ndescription: two skills\ntasks: 300\nheld_out: 100\nsteps: 15\nbatch: 8\nrollouts: 8\n\
         skills_per_task: 2\ndifficulty_mean: 0.0\ndifficulty_sd: 3.0\nlearner: [0.0, 1.0]\nweak: [-1.0, 0.0]\n\
         strong: [1.0, 2.0]\nreference_rollouts: 10\nmissing_share: 0.5\nlearning_rate: 0.01\n",
    )
    .unwrap();
    let png = dir.path().join("sim.png");
    let out = simulate(&["--world", world.to_str().unwrap(), "--plot", png.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("world `tiny`: two skills"), "{stdout}");
    assert!(stdout.contains("300 tasks (100 held out), 2 skills, 15 steps, batch 8, 8 rollouts"), "{stdout}");
    assert!(stdout.contains("features: 10 rollouts, 50% missing"), "{stdout}");
    for name in ["random", "bots", "bots-explicit", "bots-implicit", "oracle"] {
        assert!(stdout.lines().any(|l| l.split_whitespace().next() == Some(name)), "{name}: {stdout}");
    }
    assert!(
        stdout.contains("not run: bots-neighbours, bots-combined (no embeddings; neighbour evidence needs them)"),
        "{stdout}"
    );
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    // Written through the atomic writer: no temporary file left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

/// A world file without reference evals and with embeddings: the rho > 0 selectors are skipped with
/// the reason, `bots-neighbours` runs and reports its Brier row.
#[test]
fn world_file_without_references() {
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("bare.toml");
    std::fs::write(
        &world,
        "name = \"bare\"\ndescription = \"no references\"\ntasks = 400\nheld_out = 100\nsteps = 10\nbatch = 8\n\
         rollouts = 8\nskills_per_task = 1\ndifficulty_mean = 0.0\ndifficulty_sd = 3.0\nlearner = [0.0, 1.0]\n\
         references = false\nlearning_rate = 0.01\nembeddings = \"informative\"\nembedding_dim = 4\n",
    )
    .unwrap();
    let out = simulate(&["--world", world.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("features: none (no reference evals)"), "{stdout}");
    assert!(stdout.contains("embeddings: informative, 4 dims, noise 0.5"), "{stdout}");
    assert!(
        stdout.contains("not run: bots, bots-implicit, bots-combined (no reference evals; rho > 0 needs them)"),
        "{stdout}"
    );
    assert!(stdout.lines().any(|l| l.starts_with("bots-neighbours  neighbours")), "{stdout}");
    let doc = json(&["--world", world.to_str().unwrap(), "--selectors", "bots-neighbours"]);
    let w = &doc["worlds"][0];
    assert!(w["feature_correlation"].is_null() && w["neighbour_correlation"].as_f64().unwrap() > 0.5, "{w}");
    let brier = &w["selectors"][0]["brier"][0];
    assert_eq!(brier["source"], "neighbours");
    let (own, shadow, ratio) =
        (brier["brier"].as_f64().unwrap(), brier["shadow"].as_f64().unwrap(), brier["ratio"].as_f64().unwrap());
    assert!((ratio - own / shadow).abs() < 1e-12 && brier["pairs"].as_u64().unwrap() > 0, "{brier}");
}

#[test]
fn unknown_world_is_refused_with_the_names() {
    let out = simulate(&["--world", "no-such-world"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("informative, misleading, small-pool, no-references, misleading-embeddings"), "{err}");
}

/// The README's table is the literal output of `bots simulate` at the defaults, timings aside (the
/// last column, `select ms`, is measured wall time and differs from machine to machine).
#[test]
fn readme_table_is_the_output_of_simulate() {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let path = if manifest.exists() { manifest } else { "README.md".into() };
    let readme = std::fs::read_to_string(&path).unwrap();
    let shown: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("world `informative`"))
        .take_while(|l| !l.starts_with("```"))
        .collect();
    assert!(shown.len() > 20, "README has no `bots simulate` output block");
    let out = simulate(&[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let printed: Vec<&str> = stdout.lines().collect();
    assert_eq!(shown.len(), printed.len(), "README:\n{}\n\nbots simulate:\n{stdout}", shown.join("\n"));
    let selectors = ["random", "bots", "bots-explicit", "bots-implicit", "bots-neighbours", "bots-combined", "oracle"];
    for (a, b) in shown.iter().zip(&printed) {
        let (ta, tb): (Vec<&str>, Vec<&str>) = (a.split_whitespace().collect(), b.split_whitespace().collect());
        // A selector's row ends with its timing; its Brier rows (second word a source) have none.
        let brier_row = ta.get(1).is_some_and(|t| ["references", "neighbours"].contains(t));
        if ta.first().is_some_and(|t| selectors.contains(t)) && !brier_row {
            assert_eq!(ta[..ta.len() - 1], tb[..tb.len().saturating_sub(1)], "README row differs:\n{a}\n{b}");
        } else {
            assert_eq!(a.trim_end(), b.trim_end(), "README line differs");
        }
    }
}
