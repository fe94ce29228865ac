//! A candle trainer's BOTS calls on CUDA tensors, compiled against candle-core with `cuda` (issue 12).
//! CI runs `cargo check -p bots-candle-check`; a binary cannot link without the CUDA driver libraries,
//! and on a GPU machine it runs one select/update step on device 0.

use bots::candle::{cuda_pool, TensorPool};
use bots::Config;
use candle_core::{Device, Tensor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("driver present: {}", bots::driver_present());
    let device = Device::new_cuda(0)?;
    let mut pool = cuda_pool(&device, Config { rho: 0.0, batch: 4, m: 8, ..Default::default() }, 1000, None)?;
    let tasks = pool.select_tensor(4, &device)?;
    let rates = Tensor::new(&[0.5f32, 0.25, 1.0, 0.0], &device)?;
    pool.update_rates_tensor(&tasks, &rates)?;
    println!("selected {:?}, step {}", tasks.to_vec1::<u32>()?, pool.sync()?.step);
    Ok(())
}
