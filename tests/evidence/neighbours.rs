//! Neighbour evidence (docs/EVIDENCE-SOURCES.md §2): hand-worked numbers, an independent check of
//! the push through the reverse lists against a scan of the whole pool, checkpoints with a graph, and
//! the errors.
//!
//! The tests that take pools from [`devices`] run on every backend there is: the CPU always, and the
//! CUDA backend when a device is usable (`common::gpu_available`; under `BOTS_REQUIRE_GPU=1` a missing
//! one is a failure). Every device must agree with the CPU backend bit for bit.

use crate::common;

use crate::{column, devices, DEVICE};
use std::collections::HashSet;

use bots::{checkpoint, open_with, Backend, BackendKind, BotsError, Config, CpuPool, Evidence, Features, Neighbours};
use common::assert_bit_identical;

/// Deterministic embeddings: `n` points around 12 centres in 6 dimensions.
fn embeddings(n: usize) -> Vec<f32> {
    let mut e = Vec::with_capacity(n * 6);
    for i in 0..n {
        let c = (i * 7) % 12;
        for d in 0..6 {
            let centre = if (c >> (d % 4)) & 1 == 1 { 1.0 } else { -0.3 } + (c as f32) * 0.05 * (d as f32);
            let noise = (((i * 131 + d * 71) % 97) as f32 / 97.0 - 0.5) * 0.6;
            e.push(centre + noise);
        }
    }
    e
}

/// Four tasks, graph 0 -> (1: 0.8, 2: 0.4), 1 -> (0: 0.8), 2 -> (0: 0.5, 3: 0.5), 3 -> (2: 1.0);
/// eta = 0.5, lambda = 0.1, rho = 0, m = 8, prior Beta(1, 1).
///
/// Step 1: the batch is task 0 at r = 0.75 (s_bar 6, f_bar 2) and task 3 at r = 0.25 (2, 6).
///   task 0: alpha = 0.9 + 0.1 + 6 = 7, beta = 3; task 3: alpha = 3, beta = 7 (explicit, rho = 0).
///   task 1 (neighbour 0, w 0.8): W = 0.8, c = 0.5: alpha = 1 + 0.5·0.8·6 = 3.4, beta = 1 + 0.5·0.8·2 = 1.8.
///   task 2 (neighbours 0 and 3, w 0.5 each): W = 1, c = 0.5: alpha = 1 + 0.5·(3 + 1) = 3,
///           beta = 1 + 0.5·(1 + 3) = 3.
/// Step 2: the batch is task 1 at r = 1 (8, 0): task 0 (w 0.8) gets alpha = 0.9·7 + 0.1 + 3.2 = 9.6,
///   beta = 0.9·3 + 0.1 = 2.8; tasks 2 and 3 only forget: 2.8, 2.8 and 2.8, 6.4.
#[test]
fn hand_worked_neighbour_updates() {
    let _d = DEVICE.lock().unwrap_or_else(|e| e.into_inner());
    let none = Neighbours::NONE;
    let g =
        Neighbours::from_lists(4, 2, vec![1, 2, 0, none, 0, 3, 2, none], vec![0.8, 0.4, 0.8, 0.0, 0.5, 0.5, 1.0, 0.0])
            .unwrap();
    let cfg = Config { rho: 0.0, m: 8, neighbour_weight: 0.5, batch: 2, ..Config::default() };
    for (name, mut p) in devices(&cfg, 4, None, Some(&g)) {
        p.update(&Evidence::pass_rates(vec![0, 3], vec![0.75, 0.25])).unwrap();
        check(p.as_ref(), name, [7.0, 3.4, 3.0, 3.0], [3.0, 1.8, 3.0, 7.0]);
        p.update(&Evidence::counts(vec![1], vec![8.0], vec![0.0])).unwrap();
        check(p.as_ref(), name, [9.6, 0.9 * 3.4 + 0.1 + 8.0, 2.8, 2.8], [2.8, 0.9 * 1.8 + 0.1, 2.8, 6.4]);
    }
}

fn check(p: &dyn Backend, name: &str, alpha: [f64; 4], beta: [f64; 4]) {
    let s = p.to_host().unwrap();
    for k in 0..4 {
        for (what, got, want) in [("alpha", s.alpha[k], alpha[k]), ("beta", s.beta[k], beta[k])] {
            assert!(((got as f64) - want).abs() / want < 2e-6, "{name}: task {k} {what}: got {got}, want {want}");
        }
    }
}

/// The push through the reverse lists finds exactly the tasks a scan of every row finds, and each
/// gets exactly `c·S`, `c·F` on top of what a pool without those edges gives it (checked bit for bit
/// in f32, with references, adaptive rho, per-task priors and count evidence).
#[test]
fn the_push_matches_a_scan_of_the_whole_pool() {
    let n = 1500;
    let g = Neighbours::from_embeddings(&embeddings(n), 6, 8, 0.2).unwrap().cap_in_degree(20);
    assert!(g.edges() > n * 4, "a graph with edges ({})", g.edges());
    let empty = Neighbours::from_lists(n, 8, vec![Neighbours::NONE; n * 8], vec![0.0; n * 8]).unwrap();
    let f = Features::from_f32(&column(n, 16, 0), &column(n, 16, 9)).unwrap();
    let cfg =
        Config { batch: 24, neighbour_weight: 0.7, adaptive_rho: true, prior_strength: Some(2.0), ..Config::default() };
    let mut a = CpuPool::with_neighbours(cfg.clone(), n, Some(f.clone()), Some(g.clone())).unwrap();
    let mut b = CpuPool::with_neighbours(cfg.clone(), n, Some(f), Some(empty.clone())).unwrap();
    let mut touched_any = 0;
    for step in 0..25u32 {
        let tasks = a.select_batch().unwrap();
        let ev = Evidence::counts(
            tasks.clone(),
            tasks.iter().map(|&t| ((t + step) % 9) as f32).collect(),
            tasks.iter().map(|&t| (1 + (t * 3 + step) % 7) as f32).collect(),
        );
        let before = a.to_host().unwrap();
        b.restore(bots::PoolState { neighbours: Some(empty.clone()), ..before.clone() }).unwrap();
        a.update(&ev).unwrap();
        b.update(&ev).unwrap();
        let (sa, sb) = (a.to_host().unwrap(), b.to_host().unwrap());
        let batch: HashSet<u32> = tasks.iter().copied().collect();
        let row = |t: u32| tasks.iter().position(|&x| x == t);
        let (s_of, f_of) = match &ev.outcomes {
            bots::Outcomes::Counts { successes, failures } => (successes.clone(), failures.clone()),
            _ => unreachable!(),
        };
        for i in 0..n {
            let (ids, w) = g.row(i);
            let near: Vec<(usize, f32)> =
                ids.iter().zip(w).filter_map(|(&j, &wj)| row(j).filter(|_| j != u32::MAX).map(|r| (r, wj))).collect();
            if batch.contains(&(i as u32)) || near.is_empty() {
                assert_eq!(sa.alpha[i].to_bits(), sb.alpha[i].to_bits(), "step {step} task {i}: untouched alpha");
                assert_eq!(sa.beta[i].to_bits(), sb.beta[i].to_bits(), "step {step} task {i}: untouched beta");
                continue;
            }
            touched_any += 1;
            let (mut ws, mut ss, mut fs) = (0.0f32, 0.0f32, 0.0f32);
            for &(r, wj) in &near {
                ws += wj;
                ss += wj * s_of[r];
                fs += wj * f_of[r];
            }
            let c = 0.7f32 / ws.max(1.0);
            assert_eq!(sa.alpha[i].to_bits(), (sb.alpha[i] + c * ss).to_bits(), "step {step} task {i}: alpha");
            assert_eq!(sa.beta[i].to_bits(), (sb.beta[i] + c * fs).to_bits(), "step {step} task {i}: beta");
        }
    }
    assert!(touched_any > 25 * 24, "neighbour evidence reached {touched_any} task-steps");
}

/// Selections, reports and states agree with the CPU bit for bit on every device; a checkpoint taken
/// mid-run restores the graph and resumes exactly; a checkpoint is refused by a pool with another
/// graph or another neighbour_weight.
#[test]
fn neighbour_runs_agree_resume_and_refuse_other_graphs() {
    let _d = DEVICE.lock().unwrap_or_else(|e| e.into_inner());
    let n = 2000;
    let g = Neighbours::from_embeddings(&embeddings(n), 6, 12, 0.0).unwrap();
    let f = Features::from_f32(&column(n, 10, 0), &column(n, 10, 4)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (ci, (cfg, feats)) in [
        (Config { rho: 0.0, neighbour_weight: 1.0, batch: 16, m: 8, ..Config::default() }, None),
        (Config { neighbour_weight: 0.3, batch: 32, tau: 0.1, ..Config::default() }, Some(&f)),
    ]
    .into_iter()
    .enumerate()
    {
        let mut runs = Vec::new();
        for (name, mut p) in devices(&cfg, n, feats, Some(&g)) {
            let mut log = Vec::new();
            let ckpt = dir.path().join(format!("{name}-{ci}.ckpt"));
            for step in 0..30u32 {
                if step == 12 {
                    p.save_checkpoint(&ckpt).unwrap();
                }
                let tasks = p.select_batch().unwrap();
                let rates = tasks.iter().map(|&t| ((t * 5 + step) % 9) as f32 / 8.0).collect();
                let r = p.update(&Evidence::pass_rates(tasks.clone(), rates)).unwrap();
                log.push((tasks, r));
            }
            let end = p.to_host().unwrap();
            // Resume from step 12 on a fresh pool of the same kind: the same 18 steps and state.
            let mut q = open_with(
                if name == "cpu" { BackendKind::Cpu } else { BackendKind::Cuda { ordinal: 0 } },
                cfg.clone(),
                n,
                feats.cloned(),
                Some(g.clone()),
            )
            .unwrap();
            q.restore_checkpoint(&ckpt).unwrap();
            for (step, (tasks, r)) in log.iter().enumerate().skip(12) {
                assert_eq!(&q.select_batch().unwrap(), tasks, "{name}: resumed step {step}");
                let rates = tasks.iter().map(|&t| ((t * 5 + step as u32) % 9) as f32 / 8.0).collect();
                assert_eq!(&q.update(&Evidence::pass_rates(tasks.clone(), rates)).unwrap(), r, "{name}: step {step}");
            }
            assert_bit_identical(&q.to_host().unwrap(), &end, &format!("{name}: resumed"));
            assert_eq!(end.neighbours.as_ref(), Some(&g), "{name}: the graph comes back");
            let h = checkpoint::read_header(&ckpt).unwrap();
            assert_eq!((h.neighbour_k, h.version), (12, 3));
            // Another graph (one weight changed) or another eta: refused, the pool unchanged.
            let mut w = g.weights().to_vec();
            w[0] *= 0.5;
            let other = Neighbours::from_lists(n, 12, g.ids().to_vec(), w).unwrap();
            let mut r = CpuPool::with_neighbours(cfg.clone(), n, feats.cloned(), Some(other)).unwrap();
            let before = r.to_host().unwrap();
            let err = r.restore_checkpoint(&ckpt).unwrap_err().to_string();
            assert!(err.contains("neighbour graph with digest"), "{err}");
            assert_eq!(r.to_host().unwrap(), before);
            let eta = Config { neighbour_weight: 0.25, ..cfg.clone() };
            let mut r = CpuPool::with_neighbours(eta, n, feats.cloned(), Some(g.clone())).unwrap();
            let err = r.restore_checkpoint(&ckpt).unwrap_err().to_string();
            assert!(err.contains("neighbour_weight = "), "{err}");
            runs.push((name, log, end));
        }
        for (name, log, end) in &runs[1..] {
            assert_eq!(log, &runs[0].1, "{name}: selections and reports differ from the CPU's");
            assert_bit_identical(end, &runs[0].2, &format!("{name} against cpu"));
        }
    }
}

/// A host batch larger than `config.batch` (what a CUDA pool sizes its neighbour buffers for at first)
/// still agrees with the CPU bit for bit, before and after a restore into a fresh pool.
#[test]
fn batches_beyond_the_configured_size_agree() {
    let _d = DEVICE.lock().unwrap_or_else(|e| e.into_inner());
    let n = 400;
    let g = Neighbours::from_embeddings(&embeddings(n), 6, 10, 0.0).unwrap();
    let cfg = Config { rho: 0.0, neighbour_weight: 0.8, batch: 2, ..Config::default() };
    let mut ends = Vec::new();
    for (name, mut p) in devices(&cfg, n, None, Some(&g)) {
        for step in 0..4u32 {
            let len = [2, 40, 150, 7][step as usize];
            let tasks: Vec<u32> = (0..len).map(|i| (i * 37 + step * 11) % n as u32).collect();
            let rates = tasks.iter().map(|&t| ((t + step) % 5) as f32 / 4.0).collect();
            p.update(&Evidence::pass_rates(tasks, rates)).unwrap();
        }
        let mid = p.to_host().unwrap();
        p.restore(mid.clone()).unwrap();
        let tasks: Vec<u32> = (0..120).map(|i| (i * 3 + 1) as u32).collect();
        p.update(&Evidence::counts(tasks.clone(), vec![3.0; 120], vec![5.0; 120])).unwrap();
        ends.push((name, p.to_host().unwrap()));
    }
    for (name, end) in &ends[1..] {
        assert_bit_identical(end, &ends[0].1, &format!("{name} against cpu"));
    }
}

#[test]
fn a_graph_goes_with_neighbour_weight_and_fits_the_pool() {
    let g = Neighbours::from_lists(3, 1, vec![1, 2, 0], vec![1.0, 1.0, 1.0]).unwrap();
    let on = Config { rho: 0.0, neighbour_weight: 0.5, ..Config::default() };
    let off = Config { rho: 0.0, ..Config::default() };
    let err = CpuPool::new(on.clone(), 3, None).unwrap_err().to_string();
    assert!(err.contains("neighbour_weight") && err.contains("needs a neighbour graph"), "{err}");
    let err = CpuPool::with_neighbours(off, 3, None, Some(g.clone())).unwrap_err().to_string();
    assert!(err.contains("would be unused"), "{err}");
    assert!(matches!(
        CpuPool::with_neighbours(on.clone(), 4, None, Some(g.clone())),
        Err(BotsError::LengthMismatch { .. })
    ));
    let err = Config::from_str_format("neighbour_weight: 1.5", "yaml").unwrap_err();
    assert!(err.contains("neighbour_weight"), "{err}");
    assert_eq!(Config::from_str_format("eta: 0.25\nrho: 0", "yaml").unwrap().neighbour_weight, 0.25);
    // A bad batch leaves a pool with a graph unchanged.
    let mut p = CpuPool::with_neighbours(on, 3, None, Some(g)).unwrap();
    p.update(&Evidence::pass_rates(vec![0], vec![1.0])).unwrap();
    let before = p.to_host().unwrap();
    assert!(p.update(&Evidence::pass_rates(vec![1, 5], vec![0.5, 0.5])).is_err());
    assert_eq!(p.to_host().unwrap(), before);
}
