//! Neighbour evidence (docs/EVIDENCE-SOURCES.md §2): a k-nearest-neighbour graph over the tasks,
//! through which a batch's outcomes become implicit evidence for the batch's neighbours.
//!
//! [`Neighbours`] holds each task's out-neighbours (`N(i)`, up to `k` of them, by decreasing weight)
//! and derives the reverse lists (`R(b) = { i : b in N(i) }`) that let an update find the tasks near
//! its batch in time that grows with the batch, not the pool. [`neighbour_evidence`] is the CPU twin
//! of the `nbr_push` and `nbr_pull_apply` kernels.

use std::collections::HashMap;
use std::hash::Hasher;

use rayon::prelude::*;
use twox_hash::XxHash3_64;

use crate::error::{BotsError, Result};

/// Most out-neighbours a task may have.
pub const MAX_NEIGHBOURS: usize = 64;

// The kernels' empty slot (abi.cuh's BOTS_NO_NEIGHBOUR) is this crate's.
const _: () = assert!(Neighbours::NONE == crate::abi::NO_NEIGHBOUR);

/// A k-nearest-neighbour graph over the tasks of a pool: per task up to `k` out-neighbours with
/// similarity weights in (0, 1], sorted by decreasing weight (ties by id), padded with
/// [`Neighbours::NONE`].
///
/// ```
/// use bots::Neighbours;
/// // Three tasks on a line: 0 -- 1 -- 2.
/// let g = Neighbours::from_lists(3, 2, vec![1, u32::MAX, 0, 2, 1, u32::MAX], vec![0.9, 0.0, 0.5, 0.8, 0.9, 0.0])?;
/// assert_eq!(g.row(1), (&[2, 0][..], &[0.8, 0.5][..])); // sorted by weight
/// assert_eq!(g.reverse(1), &[0, 2]); // the tasks that have 1 as a neighbour
/// # Ok::<(), bots::BotsError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Neighbours {
    k: usize,
    ids: Vec<u32>,
    weights: Vec<f32>,
    rev_off: Vec<u64>,
    rev_ids: Vec<u32>,
}

impl Neighbours {
    /// The id of an empty slot in a row.
    pub const NONE: u32 = u32::MAX;

    /// A graph from per-task lists: row `i` is `ids[i·k..(i+1)·k]` with `weights` alike. Empty slots
    /// hold [`Neighbours::NONE`] (their weight is ignored). Every id must name another task (`< n_tasks`,
    /// not `i` itself), at most once per row, with a weight in (0, 1]. Rows are stored sorted by
    /// decreasing weight, ties by increasing id, empty slots last, so that the order of a row (which
    /// fixes the order of the update's sums) does not depend on how it was given.
    pub fn from_lists(n_tasks: usize, k: usize, mut ids: Vec<u32>, mut weights: Vec<f32>) -> Result<Neighbours> {
        if k == 0 || k > MAX_NEIGHBOURS {
            return Err(BotsError::config("neighbour_k", format!("{k} must be in 1..={MAX_NEIGHBOURS}")));
        }
        if n_tasks == 0 || n_tasks > u32::MAX as usize {
            return Err(BotsError::config("tasks", format!("{n_tasks} tasks: a graph needs 1 to 2^32 - 1")));
        }
        let cells = n_tasks.saturating_mul(k);
        for (what, got) in [("neighbour ids (tasks · k)", ids.len()), ("neighbour weights (tasks · k)", weights.len())]
        {
            if got != cells {
                return Err(BotsError::LengthMismatch { what: what.into(), expected: cells, got });
            }
        }
        let bad = |task: usize, reason: String| Err(BotsError::InvalidNeighbours { task, reason });
        for i in 0..n_tasks {
            let (row, w) = (&ids[i * k..(i + 1) * k], &weights[i * k..(i + 1) * k]);
            for (s, (&j, &wj)) in row.iter().zip(w).enumerate() {
                if j == Self::NONE {
                    continue;
                }
                if j as usize >= n_tasks {
                    return bad(i, format!("neighbour id {j} is out of range: the pool has {n_tasks} tasks"));
                }
                if j as usize == i {
                    return bad(i, "a task cannot be its own neighbour".into());
                }
                if !(wj > 0.0 && wj <= 1.0) {
                    return bad(i, format!("the weight of neighbour {j} is {wj}; weights must be in (0, 1]"));
                }
                if row[..s].contains(&j) {
                    return bad(i, format!("neighbour {j} is listed twice"));
                }
            }
        }
        ids.par_chunks_mut(k).zip(weights.par_chunks_mut(k)).for_each(|(row, w)| {
            let mut pairs: Vec<(u32, f32)> = row.iter().copied().zip(w.iter().copied()).collect();
            pairs.sort_by(|a, b| {
                (a.0 == Self::NONE).cmp(&(b.0 == Self::NONE)).then(b.1.total_cmp(&a.1)).then(a.0.cmp(&b.0))
            });
            for (s, (j, wj)) in pairs.into_iter().enumerate() {
                row[s] = j;
                w[s] = if j == Self::NONE { 0.0 } else { wj };
            }
        });
        Ok(Self::with_reverse(k, ids, weights))
    }

    /// Derives the reverse lists (CSR, each list sorted by task id).
    fn with_reverse(k: usize, ids: Vec<u32>, weights: Vec<f32>) -> Neighbours {
        let n = ids.len() / k;
        let mut rev_off = vec![0u64; n + 1];
        for &j in ids.iter().filter(|&&j| j != Self::NONE) {
            rev_off[j as usize + 1] += 1;
        }
        for i in 0..n {
            rev_off[i + 1] += rev_off[i];
        }
        let mut fill: Vec<u64> = rev_off[..n].to_vec();
        let mut rev_ids = vec![0u32; rev_off[n] as usize];
        for (cell, &j) in ids.iter().enumerate() {
            if j != Self::NONE {
                rev_ids[fill[j as usize] as usize] = (cell / k) as u32;
                fill[j as usize] += 1;
            }
        }
        Neighbours { k, ids, weights, rev_off, rev_ids }
    }

    /// The exact k-nearest-neighbour graph of `embeddings` (row-major, `dim` values per task) under
    /// cosine similarity: each task's `k` most similar other tasks (ties by id), with weight
    /// `min(cos, 1)`, keeping only edges with `cos >= min_similarity` and `cos > 0`. Deterministic (each
    /// similarity is one f32 dot product of the normalised rows, in index order); cost O(N²·dim), meant
    /// for pools up to about 10^5 tasks. Every value must be finite and no row may be all zeros.
    ///
    /// ```
    /// use bots::Neighbours;
    /// let e = [1.0, 0.0,  0.9, 0.1,  0.0, 1.0,  0.1, 0.9];
    /// let g = Neighbours::from_embeddings(&e, 2, 1, 0.0)?;
    /// assert_eq!((g.row(0).0, g.row(2).0), (&[1][..], &[3][..]));
    /// # Ok::<(), bots::BotsError>(())
    /// ```
    pub fn from_embeddings(embeddings: &[f32], dim: usize, k: usize, min_similarity: f32) -> Result<Neighbours> {
        let n = embeddings.len() / dim.max(1);
        let (ids, weights) = Neighbours::knn_rows(embeddings, dim, k, min_similarity, 0..n)?;
        Neighbours::from_lists(n, k, ids, weights)
    }

    /// The rows `rows` of [`Neighbours::from_embeddings`]'s graph over all of `embeddings`: what
    /// [`crate::NewTasks::with_neighbours`] takes for tasks appended with these embeddings (pass the
    /// old and new tasks' embeddings, and the new tasks' range). `rows.len() · k` ids and weights.
    ///
    /// ```
    /// use bots::Neighbours;
    /// let e = [1.0, 0.0,  0.0, 1.0,  0.9, 0.1];
    /// let (ids, w) = Neighbours::knn_rows(&e, 2, 1, 0.0, 2..3)?;
    /// assert_eq!(ids, vec![0]);
    /// # Ok::<(), bots::BotsError>(())
    /// ```
    pub fn knn_rows(
        embeddings: &[f32],
        dim: usize,
        k: usize,
        min_similarity: f32,
        rows: std::ops::Range<usize>,
    ) -> Result<(Vec<u32>, Vec<f32>)> {
        if dim == 0 || !embeddings.len().is_multiple_of(dim) {
            return Err(BotsError::LengthMismatch {
                what: format!("embedding values (tasks · dim, dim = {dim})"),
                expected: embeddings.len().div_ceil(dim.max(1)) * dim.max(1),
                got: embeddings.len(),
            });
        }
        if k == 0 || k > MAX_NEIGHBOURS {
            return Err(BotsError::config("neighbour_k", format!("{k} must be in 1..={MAX_NEIGHBOURS}")));
        }
        if !min_similarity.is_finite() || min_similarity > 1.0 {
            return Err(BotsError::config("neighbour_min_similarity", format!("{min_similarity} must be <= 1")));
        }
        let n = embeddings.len() / dim;
        if rows.start > rows.end || rows.end > n {
            return Err(BotsError::LengthMismatch { what: "embedding rows".into(), expected: rows.end, got: n });
        }
        let mut unit = embeddings.to_vec();
        for (i, row) in unit.chunks_mut(dim).enumerate() {
            if let Some(v) = row.iter().find(|v| !v.is_finite()) {
                return Err(BotsError::InvalidNeighbours {
                    task: i,
                    reason: format!("embedding value {v} is not finite"),
                });
            }
            let norm = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
            if norm == 0.0 {
                return Err(BotsError::InvalidNeighbours { task: i, reason: "the embedding is all zeros".into() });
            }
            row.iter_mut().for_each(|v| *v = (*v as f64 / norm) as f32);
        }
        let found: Vec<Vec<(u32, f32)>> = rows
            .clone()
            .into_par_iter()
            .map(|i| {
                let ei = &unit[i * dim..(i + 1) * dim];
                let mut best: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
                for j in (0..n).filter(|&j| j != i) {
                    let ej = &unit[j * dim..(j + 1) * dim];
                    let cos = ei.iter().zip(ej).fold(0.0f32, |s, (a, b)| s + a * b);
                    if !(cos > 0.0 && cos >= min_similarity) {
                        continue;
                    }
                    if best.len() == k && cos <= best[k - 1].1 {
                        continue; // not better than the worst kept (ties keep the smaller id)
                    }
                    let at = best.partition_point(|&(_, w)| w >= cos);
                    best.insert(at, (j as u32, cos));
                    best.truncate(k);
                }
                best
            })
            .collect();
        let mut ids = vec![Self::NONE; rows.len() * k];
        let mut weights = vec![0.0f32; rows.len() * k];
        for (r, row) in found.into_iter().enumerate() {
            for (s, (j, w)) in row.into_iter().enumerate() {
                ids[r * k + s] = j;
                weights[r * k + s] = w.min(1.0);
            }
        }
        Ok((ids, weights))
    }

    /// Caps every task's in-degree (its reverse list) at `max_in`: a task with more in-edges keeps
    /// those of highest weight (ties by source id) and the others are removed from their rows, so
    /// that a step costs at most `batch · max_in` (kNN graphs in high dimensions have hubs).
    pub fn cap_in_degree(&self, max_in: usize) -> Neighbours {
        let n = self.len();
        let mut keep = vec![true; self.ids.len()];
        for b in 0..n {
            let sources = self.reverse(b);
            if sources.len() <= max_in {
                continue;
            }
            let mut edges: Vec<(usize, f32)> = sources
                .iter()
                .map(|&i| {
                    let s = self.slot(i as usize, b as u32).expect("a reverse edge has its forward edge");
                    (i as usize * self.k + s, self.weights[i as usize * self.k + s])
                })
                .collect();
            edges.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            for &(cell, _) in &edges[max_in..] {
                keep[cell] = false;
            }
        }
        let (mut ids, mut weights) = (vec![Self::NONE; self.ids.len()], vec![0.0; self.ids.len()]);
        for i in 0..n {
            let cells = i * self.k..(i + 1) * self.k;
            let kept = cells.filter(|&c| keep[c] && self.ids[c] != Self::NONE);
            for (s, c) in kept.enumerate() {
                ids[i * self.k + s] = self.ids[c];
                weights[i * self.k + s] = self.weights[c];
            }
        }
        Self::with_reverse(self.k, ids, weights)
    }

    fn slot(&self, i: usize, j: u32) -> Option<usize> {
        self.row(i).0.iter().position(|&x| x == j)
    }

    /// Out-neighbours per task (the row length, empty slots included).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.ids.len() / self.k
    }

    /// True for a graph of no tasks (never, for a constructed graph).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Task `i`'s out-neighbours and their weights, sorted by decreasing weight, empty slots last.
    pub fn row(&self, i: usize) -> (&[u32], &[f32]) {
        (&self.ids[i * self.k..(i + 1) * self.k], &self.weights[i * self.k..(i + 1) * self.k])
    }

    /// Every row back to back (`len() · k()` ids).
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Every row's weights back to back.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// The tasks that have task `b` as an out-neighbour, by increasing id.
    pub fn reverse(&self, b: usize) -> &[u32] {
        &self.rev_ids[self.rev_off[b] as usize..self.rev_off[b + 1] as usize]
    }

    /// The reverse lists as CSR: offsets (`len() + 1`) and ids (what the CUDA pool uploads).
    pub(crate) fn reverse_csr(&self) -> (&[u64], &[u32]) {
        (&self.rev_off, &self.rev_ids)
    }

    /// The edges (non-empty slots).
    pub fn edges(&self) -> usize {
        self.rev_ids.len()
    }

    /// Appends tasks: `ids`/`weights` hold `extra` new rows of `k` (ids may name any task of the grown
    /// pool, old or new). Old rows are unchanged; the reverse lists are derived again. Checked like
    /// [`Neighbours::from_lists`]; on error `self` is unchanged.
    pub fn append(&mut self, extra: usize, ids: &[u32], weights: &[f32]) -> Result<()> {
        let n = self.len() + extra;
        let mut all_ids = Vec::with_capacity(n * self.k);
        all_ids.extend_from_slice(&self.ids);
        all_ids.extend_from_slice(ids);
        let mut all_w = Vec::with_capacity(n * self.k);
        all_w.extend_from_slice(&self.weights);
        all_w.extend_from_slice(weights);
        if ids.len() != extra * self.k || weights.len() != extra * self.k {
            return Err(BotsError::LengthMismatch {
                what: format!("appended neighbour ids and weights ({extra} tasks · k = {})", self.k),
                expected: extra * self.k,
                got: ids.len().max(weights.len()),
            });
        }
        *self = Neighbours::from_lists(n, self.k, all_ids, all_w)?;
        Ok(())
    }

    /// XXH3-64 of k, the ids and the weights (little-endian): what a [`crate::Fingerprint`] holds.
    pub(crate) fn digest(&self) -> u64 {
        let mut h = XxHash3_64::with_seed(0);
        h.write(&(self.k as u64).to_le_bytes());
        for chunk in self.ids.chunks(1 << 12) {
            h.write(&chunk.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
        }
        for chunk in self.weights.chunks(1 << 12) {
            h.write(&chunk.iter().flat_map(|v| v.to_bits().to_le_bytes()).collect::<Vec<u8>>());
        }
        h.finish()
    }
}

/// One task's neighbour sums over a batch (§2.2): `W = Σ w`, `S = Σ w·s_bar`, `F = Σ w·f_bar` over its
/// out-neighbours that are in the batch, in row order, in f32. `row_of` maps a task id to its batch
/// row's `(s_bar, f_bar)`.
#[inline]
pub fn neighbour_sums(ids: &[u32], weights: &[f32], row_of: impl Fn(u32) -> Option<(f32, f32)>) -> (f32, f32, f32) {
    let (mut w_sum, mut s_sum, mut f_sum) = (0.0f32, 0.0f32, 0.0f32);
    for (&j, &w) in ids.iter().zip(weights) {
        if j == Neighbours::NONE {
            break;
        }
        if let Some((s, f)) = row_of(j) {
            w_sum += w;
            s_sum += w * s;
            f_sum += w * f;
        }
    }
    (w_sum, s_sum, f_sum)
}

/// The neighbour term's scale `c = eta / max(1, W)`.
#[inline]
pub fn neighbour_scale(eta: f32, w_sum: f32) -> f32 {
    eta / if w_sum > 1.0 { w_sum } else { 1.0 }
}

/// The tasks that receive neighbour evidence from a batch: `(∪_{b in batch} R(b)) \ batch`, by
/// increasing id (the push of §2.3), with a map from each batch task to its row.
pub fn touched(graph: &Neighbours, batch: &[u32]) -> (Vec<u32>, HashMap<u32, usize>) {
    let rows: HashMap<u32, usize> = batch.iter().enumerate().map(|(r, &t)| (t, r)).collect();
    let mut t: Vec<u32> = batch
        .iter()
        .flat_map(|&b| graph.reverse(b as usize).iter().copied())
        .filter(|i| !rows.contains_key(i))
        .collect();
    t.sort_unstable();
    t.dedup();
    (t, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lists_are_refused_with_the_task() {
        let e = |r: Result<Neighbours>| match r {
            Err(BotsError::InvalidNeighbours { task, reason }) => (task, reason),
            other => panic!("{other:?}"),
        };
        let (t, why) = e(Neighbours::from_lists(2, 1, vec![1, 2], vec![0.5, 0.5]));
        assert_eq!(t, 1);
        assert!(why.contains("out of range"), "{why}");
        assert!(e(Neighbours::from_lists(2, 1, vec![0, 0], vec![0.5, 0.5])).1.contains("own neighbour"));
        assert!(e(Neighbours::from_lists(3, 2, vec![1, 1, 0, 2, 0, 1], vec![0.5; 6])).1.contains("twice"));
        assert!(e(Neighbours::from_lists(2, 1, vec![1, 0], vec![0.0, 0.5])).1.contains("(0, 1]"));
        assert!(e(Neighbours::from_lists(2, 1, vec![1, 0], vec![f32::NAN, 0.5])).1.contains("(0, 1]"));
        assert!(matches!(Neighbours::from_lists(2, 1, vec![1], vec![0.5]), Err(BotsError::LengthMismatch { .. })));
        assert!(matches!(Neighbours::from_lists(2, 0, vec![], vec![]), Err(BotsError::Config { .. })));
    }

    #[test]
    fn rows_are_canonical_and_reverse_lists_match() {
        let a = Neighbours::from_lists(
            4,
            3,
            vec![2, 1, 3, 3, 0, u32::MAX, 0, 1, 3, u32::MAX, 2, 0],
            vec![0.5, 0.5, 0.9, 0.2, 0.7, 0.0, 0.1, 0.1, 0.3, 9.0, 0.6, 0.6],
        )
        .unwrap();
        assert_eq!(a.row(0), (&[3, 1, 2][..], &[0.9, 0.5, 0.5][..]));
        assert_eq!(a.row(3), (&[0, 2, u32::MAX][..], &[0.6, 0.6, 0.0][..]));
        for b in 0..4 {
            let want: Vec<u32> = (0..4u32).filter(|&i| a.row(i as usize).0.contains(&(b as u32))).collect();
            assert_eq!(a.reverse(b), want.as_slice(), "R({b})");
        }
        assert_eq!(a.edges(), 10);
    }

    #[test]
    fn embeddings_give_the_exact_neighbours() {
        // 40 points on 4 clusters in 3-d: every neighbour of a point is in its cluster.
        let mut e = Vec::new();
        for i in 0..40 {
            let c = i % 4;
            let base = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]][c];
            e.extend(base.iter().enumerate().map(|(d, &v)| v + 0.01 * ((i * 7 + d * 3) % 11) as f32));
        }
        let g = Neighbours::from_embeddings(&e, 3, 5, 0.0).unwrap();
        for i in 0..40 {
            let (ids, w) = g.row(i);
            assert!(ids.iter().all(|&j| j as usize % 4 == i % 4), "{i}: {ids:?}");
            assert!(w.windows(2).all(|p| p[0] >= p[1]) && w.iter().all(|&x| x > 0.9 && x <= 1.0));
        }
        assert!(Neighbours::from_embeddings(&[1.0, 0.0, 0.0, 0.0], 2, 1, 0.0).is_err());
        assert!(Neighbours::from_embeddings(&[1.0, 0.0, 0.5], 2, 1, 0.0).is_err());
    }

    #[test]
    fn hubs_are_capped() {
        // Every task points to task 0 first.
        let n = 10;
        let ids: Vec<u32> =
            (0..n as u32).flat_map(|i| if i == 0 { [1, 2] } else { [0, if i == 9 { 1 } else { i + 1 }] }).collect();
        let w: Vec<f32> = (0..n).flat_map(|i| [1.0 - i as f32 * 0.01, 0.5]).collect();
        let g = Neighbours::from_lists(n, 2, ids, w).unwrap();
        assert_eq!(g.reverse(0).len(), 9);
        let c = g.cap_in_degree(3);
        assert_eq!(c.reverse(0), &[1, 2, 3]); // the highest weights
        assert!((0..n).all(|b| c.reverse(b).len() <= 3));
        assert_eq!(c.row(5).0, &[6, u32::MAX]);
    }
}
