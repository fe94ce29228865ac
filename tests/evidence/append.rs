//! Tasks added to a live pool (`Backend::append`, docs/EVIDENCE-SOURCES.md §5): the informed start
//! from references and from neighbours on hand-worked numbers, selection within the grown pool,
//! append + checkpoint + resume exactly, and errors that change nothing.
//!
//! The tests that take pools from [`devices`] run on every backend there is (the CPU always, CUDA
//! when usable; `BOTS_REQUIRE_GPU=1` makes a missing one a failure), and every device must agree with
//! the CPU bit for bit.

use crate::common;

use crate::{column, devices, DEVICE};

use bots::{open_checkpoint, Backend, BotsError, Config, CpuPool, Evidence, Features, Neighbours, NewTasks};
use common::assert_bit_identical;

/// With references: after one update (mu = 0.5 exactly: r = 0.5 on a task with f = (0.25, 0.75)),
/// a task appended with f = (0, 1) is predicted p = 0.5 and starts where the reference term alone
/// holds it: alpha = 1 + rho·m·p/lambda = 1 + 0.1·16·0.5/0.1 = 9, beta = 9. A task with f = (0.5, 0.5)
/// likewise (p = 0.5). Before any update an appended task starts at the prior.
#[test]
fn references_give_appended_tasks_the_reference_terms_fixed_point() {
    let _d = DEVICE.lock().unwrap_or_else(|e| e.into_inner());
    let f = Features::from_f32(&[0.25, 0.25], &[0.75, 0.75]).unwrap();
    let cfg = Config { batch: 1, gamma: 1.0, ..Config::default() };
    for (name, mut p) in devices(&cfg, 2, Some(&f), None) {
        let ids = p.append(&NewTasks::new(1).with_features(Features::from_f32(&[0.5], &[0.5]).unwrap())).unwrap();
        assert_eq!(ids, 2..3);
        let s = p.to_host().unwrap();
        assert_eq!((s.alpha[2], s.beta[2]), (1.0, 1.0), "{name}: before any update, the prior");
        let r = p.update(&Evidence::pass_rates(vec![0], vec![0.5])).unwrap();
        assert!((r.mu.unwrap() - 0.5).abs() < 1e-5, "{name}: {r:?}"); // 0.25 / (0.5 + 1e-6)
        let new = NewTasks::new(2).with_features(Features::from_f32(&[0.0, 0.5], &[1.0, 0.5]).unwrap());
        assert_eq!(p.append(&new).unwrap(), 3..5);
        let s = p.to_host().unwrap();
        assert_eq!(s.len(), 5);
        for k in [3, 4] {
            assert!((s.alpha[k] - 9.0).abs() < 1e-4 && (s.beta[k] - 9.0).abs() < 1e-4, "{name}: task {k}: {s:?}");
        }
        assert_eq!(p.step(), 1, "appending is not a step");
    }
}

/// With neighbours: task 3 is appended with out-neighbours 0 (w 1.0) and 1 (w 0.5); task 0 holds
/// Beta(7, 3) and task 1 Beta(2, 4) (prior 1, 1), so W = 1.5, c = eta/1.5 = 0.4 (eta = 0.6) and
/// alpha = 1 + 0.4·(1·6 + 0.5·1) = 3.6, beta = 1 + 0.4·(1·2 + 0.5·3) = 2.4.
#[test]
fn neighbours_give_appended_tasks_their_evidence() {
    let _d = DEVICE.lock().unwrap_or_else(|e| e.into_inner());
    let none = Neighbours::NONE;
    let g = Neighbours::from_lists(3, 2, vec![1, none, 0, none, 0, none], vec![0.1, 0.0, 0.1, 0.0, 0.1, 0.0]).unwrap();
    let cfg = Config { rho: 0.0, neighbour_weight: 0.6, lambda: 0.0, m: 8, ..Config::default() };
    for (name, mut p) in devices(&cfg, 3, None, Some(&g)) {
        let mut s = p.to_host().unwrap();
        (s.alpha[0], s.beta[0], s.alpha[1], s.beta[1]) = (7.0, 3.0, 2.0, 4.0);
        p.restore(s).unwrap();
        p.append(&NewTasks::new(1).with_neighbours(vec![1, 0], vec![0.5, 1.0])).unwrap();
        let s = p.to_host().unwrap();
        assert!(
            (s.alpha[3] - 3.6).abs() < 1e-6 && (s.beta[3] - 2.4).abs() < 1e-6,
            "{name}: {:?}",
            (s.alpha[3], s.beta[3])
        );
        assert_eq!(s.neighbours.as_ref().unwrap().reverse(0), &[1, 2, 3], "{name}: reverse lists grow");
        // The appended task now gets neighbour evidence from batches with task 0 in them.
        p.update(&Evidence::pass_rates(vec![0], vec![1.0])).unwrap();
        let t = p.to_host().unwrap();
        // W = 1 (only task 0 is in the batch), c = 0.6: 3.6 + 0.6·8 (lambda = 0: nothing forgotten).
        assert!((t.alpha[3] - (3.6 + 0.6 * 8.0)).abs() < 1e-5, "{name}: {}", t.alpha[3]);
    }
}

/// A run that appends twice (features and graph) and checkpoints in between agrees with the CPU on
/// every device, never selects outside the pool, and resumes from the checkpoint exactly.
#[test]
fn append_checkpoint_resume_is_exact_on_every_device() {
    let _d = DEVICE.lock().unwrap_or_else(|e| e.into_inner());
    let n0 = 600;
    let emb = |n: usize, from: usize| -> Vec<f32> {
        (from..from + n)
            .flat_map(|i| {
                (0..4).map(move |d| (((i * 37 + d * 11) % 23) as f32 - 11.0) / 7.0 + (i % 5 == d) as u8 as f32)
            })
            .collect()
    };
    let all = emb(n0 + 150, 0);
    let full = Neighbours::from_embeddings(&all, 4, 6, 0.0).unwrap();
    // The first n0 tasks' graph, restricted to them (edges to later tasks dropped).
    let restrict = |n: usize| {
        let (mut ids, mut w) = (Vec::new(), Vec::new());
        for i in 0..n {
            let (ri, rw) = full.row(i);
            for s in 0..6 {
                let keep = ri[s] != Neighbours::NONE && (ri[s] as usize) < n;
                ids.push(if keep { ri[s] } else { Neighbours::NONE });
                w.push(if keep { rw[s] } else { 0.0 });
            }
        }
        (ids, w)
    };
    let (ids0, w0) = restrict(n0);
    let g0 = Neighbours::from_lists(n0, 6, ids0, w0).unwrap();
    let rows = |from: usize, to: usize| {
        let (ids, w): (Vec<u32>, Vec<f32>) = (from..to)
            .flat_map(|i| {
                let (a, b) = full.row(i);
                a.iter().copied().zip(b.iter().copied()).collect::<Vec<_>>()
            })
            .map(|(j, wj)| if (j as usize) < to { (j, wj) } else { (Neighbours::NONE, 0.0) })
            .unzip();
        (ids, w)
    };
    let feats = |from: usize, to: usize| {
        let c = |shift| column(to, 16, shift)[from..].to_vec();
        Features::from_f32(&c(0), &c(5)).unwrap()
    };
    let cfg = Config { batch: 12, neighbour_weight: 0.4, tau: 0.05, ..Config::default() };
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for (name, mut p) in devices(&cfg, n0, Some(&feats(0, n0)), Some(&g0)) {
        let ckpt = dir.path().join(format!("{name}.ckpt"));
        let mut log = Vec::new();
        for step in 0..24u32 {
            match step {
                6 => {
                    let (ids, w) = rows(n0, n0 + 100);
                    let new = NewTasks::new(100).with_features(feats(n0, n0 + 100)).with_neighbours(ids, w);
                    assert_eq!(p.append(&new).unwrap(), n0 as u32..n0 as u32 + 100);
                }
                14 => {
                    let (ids, w) = rows(n0 + 100, n0 + 150);
                    // Thirds are not f16 values: the whole pool's features move to f32.
                    let f = Features::from_f32(&[1.0 / 3.0; 50], &[2.0 / 3.0; 50]).unwrap();
                    p.append(&NewTasks::new(50).with_features(f).with_neighbours(ids, w)).unwrap();
                    assert_eq!(p.to_host().unwrap().features.unwrap().form(), bots::FeatureForm::F32);
                }
                17 => p.save_checkpoint(&ckpt).unwrap(),
                _ => {}
            }
            let tasks = p.select_batch().unwrap();
            assert!(tasks.iter().all(|&t| (t as usize) < p.len()), "{name}: step {step}: {tasks:?}");
            let rates: Vec<f32> = tasks.iter().map(|&t| ((t * 3 + step) % 5) as f32 / 4.0).collect();
            let r = p.update(&Evidence::pass_rates(tasks.clone(), rates)).unwrap();
            log.push((tasks, r));
        }
        assert!(log.iter().flat_map(|l| &l.0).any(|&t| t as usize >= n0), "{name}: appended tasks get selected");
        let end = p.to_host().unwrap();
        let mut q = open_checkpoint(name.parse().unwrap(), &ckpt).unwrap();
        assert_eq!(q.len(), n0 + 150);
        for (step, (tasks, r)) in log.iter().enumerate().skip(17) {
            assert_eq!(&q.select_batch().unwrap(), tasks, "{name}: resumed step {step}");
            let rates = tasks.iter().map(|&t| ((t * 3 + step as u32) % 5) as f32 / 4.0).collect();
            assert_eq!(&q.update(&Evidence::pass_rates(tasks.clone(), rates)).unwrap(), r);
        }
        assert_bit_identical(&q.to_host().unwrap(), &end, &format!("{name}: resumed after appends"));
        // The pool as it was before the appends is another pool.
        let mut fresh = CpuPool::with_neighbours(cfg.clone(), n0, Some(feats(0, n0)), Some(g0.clone())).unwrap();
        let err = fresh.restore_checkpoint(&ckpt).unwrap_err().to_string();
        assert!(err.contains("750 tasks, this pool has 600"), "{err}");
        runs.push((name, log, end));
    }
    for (name, log, end) in &runs[1..] {
        assert_eq!(log, &runs[0].1, "{name}: selections differ from the CPU's");
        assert_bit_identical(end, &runs[0].2, &format!("{name} against cpu"));
    }
}

#[test]
fn bad_appends_change_nothing() {
    let g = Neighbours::from_lists(3, 1, vec![1, 2, 0], vec![1.0, 1.0, 1.0]).unwrap();
    let f = Features::from_f32(&[0.5; 3], &[0.75; 3]).unwrap();
    let cfg = Config { neighbour_weight: 0.5, ..Config::default() };
    let mut p = CpuPool::with_neighbours(cfg, 3, Some(f), Some(g)).unwrap();
    p.update(&Evidence::pass_rates(vec![0], vec![1.0])).unwrap();
    let before = p.to_host().unwrap();
    let f1 = || Features::from_f32(&[0.5], &[0.5]).unwrap();
    let cases: Vec<(NewTasks, &str)> = vec![
        (NewTasks::new(0), "empty"),
        (NewTasks::new(1).with_neighbours(vec![0], vec![1.0]), "give the new tasks theirs"),
        (NewTasks::new(1).with_features(f1()), "give the new tasks their rows"),
        (NewTasks::new(1).with_features(f1()).with_neighbours(vec![4], vec![1.0]), "out of range"),
        (NewTasks::new(1).with_features(f1()).with_neighbours(vec![3], vec![1.0]), "own neighbour"),
        (NewTasks::new(1).with_features(f1()).with_neighbours(vec![0, 1], vec![1.0, 1.0]), "appended neighbour"),
        (NewTasks::new(2).with_features(f1()).with_neighbours(vec![0, 1], vec![1.0, 1.0]), "appended features"),
        (
            NewTasks::new(1)
                .with_features(Features::from_columns(&[&[0.5]]).unwrap())
                .with_neighbours(vec![0], vec![1.0]),
            "appended features",
        ),
    ];
    for (new, words) in cases {
        let err = p.append(&new).unwrap_err();
        assert!(err.to_string().contains(words), "{err}");
        assert!(!matches!(err, BotsError::Cuda(_)));
        assert_eq!(p.to_host().unwrap(), before, "{words}: unchanged");
        assert_eq!(p.len(), 3);
    }
}
