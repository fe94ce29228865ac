//! `bots::candle` on CUDA tensors (feature `candle-cuda`; staged by `scripts/stage-candle.sh` as
//! `.device/bin/candle-gpu-test.xz`, run on the GPU machine by `scripts/device-extra.sh`): a pool on the
//! candle device's stream selects into a tensor and updates from tensor views at an offset, and
//! agrees with the CPU backend fed the same outcomes.
#![cfg(feature = "candle-cuda")]

mod common;

use bots::candle::{cuda_pool, TensorPool};
use bots::CudaPool;
use bots::{Backend, Config, CpuPool, Evidence, Features};
use candle_core::{Device, Tensor};

#[test]
fn cuda_tensors_agree_with_the_cpu_backend() {
    if !common::gpu_available() {
        return;
    }
    let dev = Device::new_cuda(0).expect("candle CUDA device 0");
    let n = 5000;
    let weak: Vec<f32> = (0..n).map(|i| (i % 97) as f32 / 97.0).collect();
    let strong: Vec<f32> = weak.iter().map(|w| (w + 0.3).min(1.0)).collect();
    let features = Features::from_f32(&weak, &strong).unwrap();
    let cfg = Config { batch: 16, m: 8, ..Default::default() };
    let mut gpu: CudaPool = cuda_pool(&dev, cfg.clone(), n, Some(features.clone())).unwrap();
    let mut cpu = CpuPool::new(cfg, n, Some(features)).unwrap();
    for step in 0..6u32 {
        let t = gpu.select_tensor(16, &dev).unwrap();
        assert!(matches!(t.device(), Device::Cuda(_)), "the selection stays on the device");
        let ids = cpu.select(16).unwrap();
        assert_eq!(t.to_vec1::<u32>().unwrap(), ids, "step {step}");
        let succ: Vec<f32> = (0..16).map(|i| ((i + step) % 9) as f32).collect();
        let fail: Vec<f32> = succ.iter().map(|s| 8.0 - s).collect();
        // Outcomes as views at an offset of larger tensors: no copy on the way in.
        let pad = |v: &[f32]| [vec![-1.0f32; 3], v.to_vec()].concat();
        let s_all = Tensor::new(pad(&succ).as_slice(), &dev).unwrap();
        let f_all = Tensor::new(pad(&fail).as_slice(), &dev).unwrap();
        gpu.update_counts_tensor(&t, &s_all.narrow(0, 3, 16).unwrap(), &f_all.narrow(0, 3, 16).unwrap()).unwrap();
        cpu.update(&Evidence::counts(ids, succ, fail)).unwrap();
    }
    assert_eq!(gpu.sync().unwrap().step, 6);
    let (g, c) = (gpu.to_host().unwrap(), cpu.to_host().unwrap());
    let worst = g
        .alpha
        .iter()
        .zip(&c.alpha)
        .chain(g.beta.iter().zip(&c.beta))
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0f32, f32::max);
    assert!(worst < 1e-5, "GPU and CPU posteriors differ by {worst} (relative)");
    // A bad value in a device tensor is reported at the next sync and leaves the state unchanged.
    let t = gpu.select_tensor(16, &dev).unwrap();
    let bad = Tensor::new(&[2.0f32; 16], &dev).unwrap();
    gpu.update_rates_tensor(&t, &bad).unwrap();
    assert!(gpu.sync().is_err(), "pass rate 2.0 must be refused on the device");
    // Tensors on another stream are refused with a typed error.
    let other = Device::new_cuda_with_stream(0).expect("a second candle device on its own stream");
    assert!(gpu.select_tensor(16, &other).is_err());
}
