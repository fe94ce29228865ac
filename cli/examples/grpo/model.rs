//! The policy: a tiny decoder-only transformer in candle, and its supervised warm start.

use anyhow::Result;
use candle_core::{Device, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::tasks::{answer, answer_mask, make_tasks, prompt, EOS, PAD, VOCAB};

pub(crate) struct Linear {
    pub(crate) w: Tensor,
    pub(crate) b: Tensor,
}

impl Linear {
    /// `[b, t, i] -> [b, t, o]` as one `[b t, i] x [i, o]` product.
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t, i) = x.dims3()?;
        x.reshape((b * t, i))?.matmul(&self.w)?.broadcast_add(&self.b)?.reshape((b, t, ()))
    }
}

pub(crate) struct Norm {
    pub(crate) g: Tensor,
    pub(crate) b: Tensor,
}

impl Norm {
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        // The primitive-op layer norm (candle-nn's fused one has no backward pass).
        candle_nn::ops::layer_norm_slow(x, &self.g, &self.b, 1e-5)
    }
}

pub(crate) struct Block {
    pub(crate) ln1: Norm,
    pub(crate) qkv: Linear,
    pub(crate) proj: Linear,
    pub(crate) ln2: Norm,
    pub(crate) fc1: Linear,
    pub(crate) fc2: Linear,
}

pub struct Policy {
    pub(crate) vars: Vec<Var>,
    pub(crate) tok: Tensor,
    pub(crate) pos: Tensor,
    pub(crate) blocks: Vec<Block>,
    pub(crate) ln_f: Norm,
    pub(crate) head: Linear,
    pub(crate) mask: Tensor,
    pub(crate) heads: usize,
    pub(crate) max_len: usize,
    pub(crate) device: Device,
}

/// Parameters made from a seeded host RNG (candle's CPU RNG cannot be seeded).
pub(crate) struct Init<'a> {
    pub(crate) rng: StdRng,
    pub(crate) vars: Vec<Var>,
    pub(crate) device: &'a Device,
}

impl Init<'_> {
    pub(crate) fn uniform(&mut self, shape: &[usize], bound: f32) -> candle_core::Result<Tensor> {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| self.rng.random_range(-bound..=bound)).collect();
        self.var(Tensor::from_vec(v, shape, self.device)?)
    }
    pub(crate) fn constant(&mut self, shape: &[usize], c: f32) -> candle_core::Result<Tensor> {
        self.var(Tensor::full(c, shape, self.device)?)
    }
    pub(crate) fn var(&mut self, t: Tensor) -> candle_core::Result<Tensor> {
        let v = Var::from_tensor(&t)?;
        let t = v.as_tensor().clone();
        self.vars.push(v);
        Ok(t)
    }
    pub(crate) fn linear(&mut self, i: usize, o: usize) -> candle_core::Result<Linear> {
        Ok(Linear { w: self.uniform(&[i, o], 1.0 / (i as f32).sqrt())?, b: self.constant(&[o], 0.0)? })
    }
    pub(crate) fn norm(&mut self, d: usize) -> candle_core::Result<Norm> {
        Ok(Norm { g: self.constant(&[d], 1.0)?, b: self.constant(&[d], 0.0)? })
    }
}

impl Policy {
    pub fn new(d: usize, layers: usize, max_len: usize, seed: u64, device: &Device) -> candle_core::Result<Policy> {
        let mut init = Init { rng: StdRng::seed_from_u64(seed), vars: Vec::new(), device };
        let t = 2 * max_len + 2;
        let tok = init.uniform(&[VOCAB, d], 1.0)?;
        let pos = init.uniform(&[t, d], 1.0)?;
        let mut blocks = Vec::new();
        for _ in 0..layers {
            blocks.push(Block {
                ln1: init.norm(d)?,
                qkv: init.linear(d, 3 * d)?,
                proj: init.linear(d, d)?,
                ln2: init.norm(d)?,
                fc1: init.linear(d, 4 * d)?,
                fc2: init.linear(4 * d, d)?,
            });
        }
        let ln_f = init.norm(d)?;
        let head = init.linear(d, VOCAB)?;
        let mask: Vec<f32> = (0..t * t).map(|k| if k % t > k / t { -1e9 } else { 0.0 }).collect();
        let mask = Tensor::from_vec(mask, (t, t), device)?;
        Ok(Policy { vars: init.vars, tok, pos, blocks, ln_f, head, mask, heads: 4, max_len, device: device.clone() })
    }

    /// Logits `[b, t, VOCAB]` for tokens `[b, t]` (position i predicts token i + 1).
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t) = x.dims2()?;
        let d = self.tok.dim(1)?;
        let (nh, dh) = (self.heads, d / self.heads);
        let mut h =
            self.tok.embedding(&x.flatten_all()?)?.reshape((b, t, d))?.broadcast_add(&self.pos.narrow(0, 0, t)?)?;
        let mask = self.mask.narrow(0, 0, t)?.narrow(1, 0, t)?;
        for blk in &self.blocks {
            let qkv = blk.qkv.forward(&blk.ln1.forward(&h)?)?.reshape((b, t, 3, nh, dh))?.permute((2, 0, 3, 1, 4))?;
            let (q, k, v) = (qkv.get(0)?.contiguous()?, qkv.get(1)?.contiguous()?, qkv.get(2)?.contiguous()?);
            let att = (q.matmul(&k.t()?.contiguous()?)? * (1.0 / (dh as f64).sqrt()))?.broadcast_add(&mask)?;
            let att = candle_nn::ops::softmax(&att, D::Minus1)?;
            let y = att.matmul(&v)?.transpose(1, 2)?.reshape((b, t, d))?;
            h = (h + blk.proj.forward(&y)?)?;
            let m = blk.fc2.forward(&blk.fc1.forward(&blk.ln2.forward(&h)?)?.relu()?)?;
            h = (h + m)?;
        }
        self.head.forward(&self.ln_f.forward(&h)?)
    }

    /// Log-probabilities of the answer tokens `[b, max_len + 1]` after their prompts.
    pub(crate) fn answer_logprobs(&self, prompts: &[Vec<u32>], answers: &[Vec<u32>]) -> candle_core::Result<Tensor> {
        let (b, p) = (prompts.len(), self.max_len + 1);
        let mut seq = Vec::with_capacity(b * (2 * p - 1));
        let mut onehot = vec![0f32; b * p * VOCAB];
        for (i, (pr, an)) in prompts.iter().zip(answers).enumerate() {
            seq.extend_from_slice(pr);
            seq.extend_from_slice(&an[..p - 1]);
            for (j, &tok) in an.iter().enumerate() {
                onehot[(i * p + j) * VOCAB + tok as usize] = 1.0;
            }
        }
        let x = Tensor::from_vec(seq, (b, 2 * p - 1), &self.device)?;
        let logits = self.forward(&x)?.narrow(1, p - 1, p)?;
        let max = logits.max_keepdim(D::Minus1)?.detach();
        let shifted = logits.broadcast_sub(&max)?;
        let logp = shifted.broadcast_sub(&shifted.exp()?.sum_keepdim(D::Minus1)?.log()?)?;
        let onehot = Tensor::from_vec(onehot, (b, p, VOCAB), &self.device)?;
        (logp * onehot)?.sum(D::Minus1)
    }

    /// Generates `max_len + 1` answer tokens for each prompt: sampled at temperature 1, or greedy.
    pub(crate) fn generate(
        &self,
        prompts: &[Vec<u32>],
        rng: Option<&mut StdRng>,
    ) -> candle_core::Result<Vec<Vec<u32>>> {
        let b = prompts.len();
        let p = self.max_len + 1;
        let mut seqs: Vec<Vec<u32>> = prompts.to_vec();
        let mut rng = rng;
        for step in 0..p {
            let t = p + step;
            let flat: Vec<u32> = seqs.iter().flatten().copied().collect();
            let x = Tensor::from_vec(flat, (b, t), &self.device)?;
            let last = self.forward(&x)?.narrow(1, t - 1, 1)?.squeeze(1)?;
            let next: Vec<u32> = match rng.as_deref_mut() {
                None => last.argmax(D::Minus1)?.to_vec1::<u32>()?,
                Some(rng) => {
                    let probs = candle_nn::ops::softmax(&last, D::Minus1)?.to_vec2::<f32>()?;
                    probs
                        .iter()
                        .map(|row| {
                            let u: f32 = rng.random();
                            let mut acc = 0.0;
                            row.iter()
                                .position(|&q| {
                                    acc += q;
                                    u < acc
                                })
                                .unwrap_or(VOCAB - 1) as u32
                        })
                        .collect()
                }
            };
            for (s, n) in seqs.iter_mut().zip(next) {
                s.push(n);
            }
            if seqs.iter().all(|s| s[p..].contains(&EOS)) {
                for s in &mut seqs {
                    s.resize(2 * p, PAD);
                }
                break;
            }
        }
        Ok(seqs.into_iter().map(|s| s[p..].to_vec()).collect())
    }

    pub(crate) fn snapshot(&self) -> candle_core::Result<Vec<Tensor>> {
        self.vars.iter().map(|v| v.as_tensor().copy()).collect()
    }

    pub(crate) fn restore(&self, snap: &[Tensor]) -> candle_core::Result<()> {
        for (v, t) in self.vars.iter().zip(snap) {
            v.set(t)?;
        }
        Ok(())
    }
}

/// Supervised steps (cross-entropy on the answer tokens) on fresh random strings.
pub(crate) fn warm_start(policy: &Policy, steps: usize, max_len: usize, rng: &mut StdRng) -> Result<()> {
    let mut opt = AdamW::new(policy.vars.clone(), ParamsAdamW { lr: 3e-3, weight_decay: 0.0, ..Default::default() })?;
    for _ in 0..steps {
        let tasks = make_tasks(64, max_len, rng);
        let prompts: Vec<Vec<u32>> = tasks.iter().map(|t| prompt(t, max_len)).collect();
        let answers: Vec<Vec<u32>> = tasks.iter().map(|t| answer(t, max_len)).collect();
        let masks: Vec<f32> = answers.iter().flat_map(|a| answer_mask(a)).collect();
        let mask = Tensor::from_vec(masks, (tasks.len(), max_len + 1), &policy.device)?;
        let logp = policy.answer_logprobs(&prompts, &answers)?;
        let loss = ((logp * &mask)?.sum_all()? / mask.sum_all()?.to_scalar::<f32>()? as f64)?.neg()?;
        opt.backward_step(&loss)?;
    }
    Ok(())
}
