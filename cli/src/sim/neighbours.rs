//! Stand-in for `bots::Neighbours` until the library's lands (same names and semantics as
//! docs/EVIDENCE-SOURCES.md §2.1): an exact cosine k-NN graph over task embeddings, and the
//! neighbour update of §2.2 applied through `to_host`/`restore`.

use bots::{Backend, BotsError, Result};

/// A k-nearest-neighbour graph: per task up to k out-neighbours, sorted by decreasing weight, ties by
/// id, padded with [`Neighbours::NONE`].
#[derive(Clone, Debug, PartialEq)]
pub struct Neighbours {
    k: usize,
    ids: Vec<u32>,
    weights: Vec<f32>,
}

impl Neighbours {
    pub const NONE: u32 = u32::MAX;

    /// Exact cosine k-NN of row-major embeddings (one row of `dim` per task); edges with a similarity
    /// below `min_similarity` or not above 0 are dropped.
    pub fn from_embeddings(embeddings: &[f32], dim: usize, k: usize, min_similarity: f32) -> Result<Neighbours> {
        if dim == 0 || embeddings.len() % dim != 0 || k == 0 {
            return Err(BotsError::Empty("embeddings"));
        }
        let n = embeddings.len() / dim;
        let unit: Vec<f32> = embeddings
            .chunks(dim)
            .flat_map(|r| {
                let norm = r.iter().map(|&x| x * x).sum::<f32>().sqrt();
                r.iter().map(move |&x| if norm > 0.0 { x / norm } else { 0.0 })
            })
            .collect();
        let mut ids = vec![Self::NONE; n * k];
        let mut weights = vec![0.0f32; n * k];
        let mut best: Vec<(f32, u32)> = Vec::with_capacity(k + 1);
        for i in 0..n {
            best.clear();
            let a = &unit[i * dim..(i + 1) * dim];
            for (j, b) in unit.chunks(dim).enumerate() {
                if j == i {
                    continue;
                }
                let w = a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>().min(1.0);
                if !(w > 0.0 && w >= min_similarity) {
                    continue;
                }
                if best.len() == k && w <= best[k - 1].0 {
                    continue;
                }
                let at = best.partition_point(|&(bw, _)| bw >= w);
                best.insert(at, (w, j as u32));
                best.truncate(k);
            }
            for (slot, &(w, j)) in best.iter().enumerate() {
                ids[i * k + slot] = j;
                weights[i * k + slot] = w;
            }
        }
        Ok(Neighbours { k, ids, weights })
    }

    pub fn k(&self) -> usize {
        self.k
    }
    pub fn len(&self) -> usize {
        self.ids.len() / self.k
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    pub fn row(&self, i: usize) -> (&[u32], &[f32]) {
        (&self.ids[i * self.k..(i + 1) * self.k], &self.weights[i * self.k..(i + 1) * self.k])
    }
}

/// §2.2 on top of an update already applied by `pool`: every task not in the batch with batch
/// neighbours gets `c_i·S_i`, `c_i·F_i` added after forgetting.
pub(crate) fn apply_neighbour_evidence(
    pool: &mut dyn Backend,
    graph: &Neighbours,
    touched: &[u32],
    row_of: &std::collections::HashMap<u32, usize>,
    s: &[f32],
    f: &[f32],
    eta: f32,
) -> Result<()> {
    let mut state = pool.to_host()?;
    for &i in touched {
        let (ids, w) = graph.row(i as usize);
        let (mut wsum, mut ssum, mut fsum) = (0.0f32, 0.0f32, 0.0f32);
        for (&b, &wb) in ids.iter().zip(w) {
            if let Some(&r) = row_of.get(&b) {
                wsum += wb;
                ssum += wb * s[r];
                fsum += wb * f[r];
            }
        }
        let c = eta / wsum.max(1.0);
        state.alpha[i as usize] += c * ssum;
        state.beta[i as usize] += c * fsum;
    }
    pool.restore(state)
}
