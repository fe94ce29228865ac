//! The task: reverse a string of digits. Prompts, answers, grading.

use rand::rngs::StdRng;
use rand::Rng;

pub(crate) const PAD: u32 = 10;
pub(crate) const SEP: u32 = 11;
pub(crate) const EOS: u32 = 12;
pub(crate) const VOCAB: usize = 13;

/// A task: the digits to reverse.
pub(crate) type Task = Vec<u8>;

pub(crate) fn make_tasks(n: usize, max_len: usize, rng: &mut StdRng) -> Vec<Task> {
    (0..n)
        .map(|_| {
            let len = rng.random_range(1..=max_len);
            (0..len).map(|_| rng.random_range(0..10u8)).collect()
        })
        .collect()
}

/// The prompt, `max_len + 1` tokens: left padding, the digits, SEP.
pub(crate) fn prompt(task: &Task, max_len: usize) -> Vec<u32> {
    let mut p = vec![PAD; max_len - task.len()];
    p.extend(task.iter().map(|&d| d as u32));
    p.push(SEP);
    p
}

/// The answer, `max_len + 1` tokens: the reversed digits, EOS, padding.
pub(crate) fn answer(task: &Task, max_len: usize) -> Vec<u32> {
    let mut a: Vec<u32> = task.iter().rev().map(|&d| d as u32).collect();
    a.push(EOS);
    a.resize(max_len + 1, PAD);
    a
}

/// Exact correctness: the generated tokens up to the first EOS are the reversed digits.
pub(crate) fn correct(task: &Task, generated: &[u32]) -> bool {
    let len = task.len();
    generated.len() > len && generated[len] == EOS && task.iter().rev().zip(generated).all(|(&d, &g)| d as u32 == g)
}

/// 1 for the generated tokens up to and including the first EOS (the ones that count), 0 after.
pub(crate) fn answer_mask(generated: &[u32]) -> Vec<f32> {
    let end = generated.iter().position(|&t| t == EOS).map_or(generated.len(), |i| i + 1);
    (0..generated.len()).map(|i| if i < end { 1.0 } else { 0.0 }).collect()
}

/// Dimensions of a task's embedding.
pub(crate) const EMBED_DIM: usize = 64;

/// A prompt embedding a user could compute without a model: the counts of the prompt text's
/// character 1-, 2- and 3-grams (with `<` and `>` marking its ends, as fastText does), hashed
/// (FNV-1a) into [`EMBED_DIM`] buckets. Nothing in it is the task's length as such: strings of similar
/// length share the boundary n-grams and, for long strings, a spread of digit n-grams, so cosine
/// similarity groups them only as far as the text does.
pub(crate) fn embedding(task: &Task) -> Vec<f32> {
    let text: Vec<u8> =
        std::iter::once(b'<').chain(task.iter().map(|d| b'0' + d)).chain(std::iter::once(b'>')).collect();
    let mut e = vec![0.0f32; EMBED_DIM];
    for n in 1..=3 {
        for gram in text.windows(n) {
            let h = gram.iter().fold(0x811c_9dc5u32, |h, &b| (h ^ b as u32).wrapping_mul(0x0100_0193));
            e[h as usize % EMBED_DIM] += 1.0;
        }
    }
    e
}
