//! The replay log: observed outcomes, one training step per JSONL line.
//!
//! ```text
//! {"step": 0, "tasks": [3, 17], "pass_rates": [0.25, 1.0]}
//! {"step": 1, "tasks": [5, 9], "successes": [4, 16], "failures": [12, 0]}
//! ```
//!
//! * `step`: the step this batch was selected at. The first logged step must equal the pool's
//!   current step (0 for a fresh pool) and each next line's step is the previous one + 1.
//! * `tasks`: task ids (0-based row order of the pool file), each at most once per line.
//! * Either `pass_rates` (mean reward of the config's m rollouts, each in [0, 1]) or `successes` and
//!   `failures` (whole, non-negative counts with 1 <= successes + failures <= m), one per task.
//!   Within one log, lines may mix the two kinds.
//!
//! No other field is allowed; blank lines are skipped. The log is streamed: [`ReplayLog`] reads and
//! fully validates one line at a time (against the pool's size and m when given
//! [`ReplayLog::check_against`]) before yielding it, so a bad line is reported, with the file and its
//! 1-based line, before it can be applied: a malformed line as [`BotsError::Parse`](bots::BotsError::Parse), bad evidence
//! (an unknown or repeated task, a pass rate or counts out of range) as [`BotsError::InFile`](bots::BotsError::InFile) wrapping
//! the variant and message [`bots::Evidence::validate`] gives every backend. JSON has no NaN:
//! a `null`, a string such as `"NaN"` or any other non-number where a number belongs is reported as
//! such.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use bots::{Backend, Evidence, Result, UpdateReport};

use crate::err;
use crate::io::pool_file::json_type;

/// One validated line of a replay log.
#[derive(Clone, Debug, PartialEq)]
pub struct LogStep {
    /// 1-based line number in the log file.
    pub line: usize,
    /// The logged step.
    pub step: u64,
    /// The batch's outcomes.
    pub evidence: Evidence,
}

/// A streaming reader of a replay log, yielding validated [`LogStep`]s in order. After the first
/// error it yields nothing more.
///
/// ```
/// use bots_cli::io::ReplayLog;
/// let text = "{\"step\": 0, \"tasks\": [3, 17], \"pass_rates\": [0.25, 1.0]}\n\n\
///             {\"step\": 1, \"tasks\": [5], \"successes\": [4], \"failures\": [12]}\n";
/// let steps: Vec<_> = ReplayLog::from_reader(text.as_bytes(), "log.jsonl", 0)
///     .check_against(20, 16)
///     .collect::<Result<_, _>>()
///     .unwrap();
/// assert_eq!((steps[0].line, steps[1].line, steps[1].step), (1, 3, 1));
/// assert_eq!(steps[1].evidence, bots::Evidence::counts(vec![5], vec![4.0], vec![12.0]));
/// ```
#[derive(Debug)]
pub struct ReplayLog<R = BufReader<File>> {
    path: PathBuf,
    reader: R,
    line_no: usize,
    first_step: u64,
    next_step: u64,
    limits: Option<(usize, u32)>,
    buf: String,
    done: bool,
}

impl ReplayLog<BufReader<File>> {
    /// Opens the log at `path`; its first step must be `first_step` (the pool's current step).
    pub fn open(path: &Path, first_step: u64) -> Result<Self> {
        let file = File::open(path).map_err(|e| err::io(path, e))?;
        Ok(ReplayLog::from_reader(BufReader::new(file), path, first_step))
    }
}

impl<R: BufRead> ReplayLog<R> {
    /// Reads a log from any buffered reader; `path` is used in error messages.
    pub fn from_reader(reader: R, path: impl Into<PathBuf>, first_step: u64) -> Self {
        ReplayLog {
            path: path.into(),
            reader,
            line_no: 0,
            first_step,
            next_step: first_step,
            limits: None,
            buf: String::new(),
            done: false,
        }
    }

    /// Also checks each line against the pool: task ids below `n_tasks`, and counts with
    /// successes + failures <= `m` (and > 0).
    pub fn check_against(mut self, n_tasks: usize, m: u32) -> Self {
        self.limits = Some((n_tasks, m));
        self
    }

    /// The log's path, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read_step(&mut self) -> Result<Option<LogStep>> {
        loop {
            self.buf.clear();
            let read = self.reader.read_line(&mut self.buf).map_err(|e| match e.kind() {
                std::io::ErrorKind::InvalidData => {
                    err::parse(&self.path, self.line_no + 1, "the line is not valid UTF-8")
                }
                _ => err::io(&self.path, e),
            })?;
            if read == 0 {
                return Ok(None);
            }
            self.line_no += 1;
            if self.buf.trim().is_empty() {
                continue;
            }
            let line = self.line_no;
            let (step, evidence) =
                parse_line(&self.buf, self.next_step, self.first_step).map_err(|m| err::parse(&self.path, line, m))?;
            // The checks every backend makes, with their variants and messages, wrapped with file:line.
            let (n, m) = self.limits.unwrap_or((usize::MAX, u32::MAX));
            evidence.validate(n, m).map_err(|e| err::in_file(&self.path, line, e))?;
            self.next_step = step + 1;
            return Ok(Some(LogStep { line, step, evidence }));
        }
    }
}

impl<R: BufRead> Iterator for ReplayLog<R> {
    type Item = Result<LogStep>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.read_step() {
            Ok(Some(s)) => Some(Ok(s)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

const FIELDS: &str = "`step`, `tasks`, and `pass_rates` or `successes` + `failures`";

/// Parses one non-blank line (its JSON shape, the step, whole counts); `Err` is the message after
/// `path:line`. The evidence itself is checked after, by [`Evidence::validate`].
fn parse_line(text: &str, expected_step: u64, first_step: u64) -> std::result::Result<(u64, Evidence), String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(obj) = value else {
        return Err(format!("expected a JSON object with {FIELDS}, got {}", json_type(&value)));
    };
    for key in obj.keys() {
        if !["step", "tasks", "pass_rates", "successes", "failures"].contains(&key.as_str()) {
            return Err(format!("unknown field `{key}` (a line has {FIELDS})"));
        }
    }
    let step = match obj.get("step") {
        None => return Err("missing field `step`".into()),
        Some(v) => v.as_u64().ok_or_else(|| format!("`step` must be a non-negative integer, got {}", show(v)))?,
    };
    if step != expected_step {
        return Err(if expected_step == first_step {
            format!("the first logged step is {step}, but the pool is at step {first_step}: the log must start there")
        } else {
            format!("step {step} is not consecutive: expected step {expected_step} (each line's step is the previous one + 1)")
        });
    }
    let tasks_v = array(&obj, "tasks")?.ok_or("missing field `tasks`")?;
    if tasks_v.is_empty() {
        return Err("`tasks` is empty: a step needs at least one task".into());
    }
    let mut tasks = Vec::with_capacity(tasks_v.len());
    for (i, v) in tasks_v.iter().enumerate() {
        let id = v
            .as_u64()
            .and_then(|t| u32::try_from(t).ok())
            .ok_or_else(|| format!("`tasks[{i}]` must be a non-negative integer task id, got {}", show(v)))?;
        tasks.push(id);
    }
    let rates = array(&obj, "pass_rates")?;
    let succ = array(&obj, "successes")?;
    let fail = array(&obj, "failures")?;
    let evidence = match (rates, succ, fail) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err("give either `pass_rates` or `successes` + `failures`, not both".into())
        }
        (None, None, None) => return Err("missing the outcomes: give `pass_rates` or `successes` + `failures`".into()),
        (None, Some(_), None) => return Err("`successes` needs `failures` beside it".into()),
        (None, None, Some(_)) => return Err("`failures` needs `successes` beside it".into()),
        (Some(r), None, None) => {
            same_len("pass_rates", r, tasks.len())?;
            let rates = numbers("pass_rates", r, &tasks, false)?;
            Evidence::pass_rates(tasks, rates)
        }
        (None, Some(s), Some(f)) => {
            same_len("successes", s, tasks.len())?;
            same_len("failures", f, tasks.len())?;
            let s = numbers("successes", s, &tasks, true)?;
            let f = numbers("failures", f, &tasks, true)?;
            Evidence::counts(tasks, s, f)
        }
    };
    Ok((step, evidence))
}

fn array<'a>(obj: &'a Map<String, Value>, key: &str) -> std::result::Result<Option<&'a Vec<Value>>, String> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(v) => Err(format!("`{key}` must be an array, got {}", show(v))),
    }
}

fn same_len(key: &str, values: &[Value], tasks: usize) -> std::result::Result<(), String> {
    if values.len() != tasks {
        return Err(format!("`{key}` has {} values for {tasks} tasks: give one per task", values.len()));
    }
    Ok(())
}

/// A value as shown in a message: its JSON text, shortened.
fn show(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 40 {
        let mut cut = 37;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    format!("{} {s}", json_type(v))
}

/// Reads a numeric array: pass rates (numbers) or counts (whole, non-negative numbers).
fn numbers(key: &str, values: &[Value], tasks: &[u32], counts: bool) -> std::result::Result<Vec<f32>, String> {
    let mut out = Vec::with_capacity(values.len());
    for (i, (v, &task)) in values.iter().zip(tasks).enumerate() {
        let at = format!("task {task} (`{key}[{i}]`)");
        let x = match v {
            Value::Number(n) => n.as_f64().ok_or_else(|| format!("{at}: {n} is not representable"))?,
            Value::String(s) if s.trim().eq_ignore_ascii_case("nan") => {
                return Err(format!("{at}: NaN (the string {s:?}) is not a valid value"))
            }
            other => return Err(format!("{at}: expected a number, got {}", show(other))),
        };
        if !counts && !(0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&(x as f32)) {
            // Out of range in f64 but rounded into it as f32 (1.00000001 -> 1): the shared check, on
            // the f32, would pass it. Values out of range either way are left to `validate_batch`.
            return Err(format!("{at}: pass rate {x} is outside [0, 1] (it rounds into range as a 32-bit float)"));
        }
        if counts {
            // Negative counts are left to `validate_batch`, which reports them as every backend does.
            if x.fract() != 0.0 || x > (1u64 << 24) as f64 {
                return Err(format!("{at}: count {x} is not a whole number of rollouts (at most 2^24)"));
            }
        }
        out.push(x as f32);
    }
    Ok(out)
}

/// What a replay did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReplaySummary {
    /// Steps applied.
    pub steps: u64,
    /// The report of the last update (`None` when the log had no steps).
    pub last: Option<UpdateReport>,
}

/// Applies every step of the log at `path` to `backend`, in order, with [`Backend::update`] (the exact
/// update of the spec). The log must start at the backend's current step. Each line is validated
/// (against the pool's size and m) before it is applied; on an error the backend holds the state
/// after the last good line, and the error names the file and line.
pub fn replay(backend: &mut dyn Backend, path: &Path) -> Result<ReplaySummary> {
    let log = ReplayLog::open(path, backend.step())?;
    replay_from(backend, log)
}

/// [`replay`] from an already opened log (any reader); checks it against the backend's pool.
pub fn replay_from<R: BufRead>(backend: &mut dyn Backend, log: ReplayLog<R>) -> Result<ReplaySummary> {
    let path = log.path().to_path_buf();
    let log = log.check_against(backend.len(), backend.config().m);
    let mut summary = ReplaySummary { steps: 0, last: None };
    for item in log {
        let s = item?;
        let report = backend.update(&s.evidence).map_err(|e| err::in_file(&path, s.line, e))?;
        summary.steps += 1;
        summary.last = Some(report);
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bots::{BotsError, Config, CpuPool};

    fn parse_all(text: &str, first: u64) -> Result<Vec<LogStep>> {
        ReplayLog::from_reader(text.as_bytes(), "log.jsonl", first).check_against(20, 16).collect()
    }

    fn err(text: &str) -> String {
        let e = parse_all(text, 0).unwrap_err();
        assert!(matches!(e, BotsError::Parse { .. } | BotsError::InFile { .. }), "{e:?}");
        e.to_string()
    }

    const L0: &str = "{\"step\": 0, \"tasks\": [3, 17], \"pass_rates\": [0.25, 1.0]}\n";

    #[test]
    fn parses_rates_and_counts_past_blank_lines() {
        let text =
            format!("{L0}\n   \n{{\"step\": 1, \"tasks\": [5, 9], \"successes\": [4, 0], \"failures\": [12, 3]}}\n");
        let steps = parse_all(&text, 0).unwrap();
        assert_eq!(steps.len(), 2);
        assert_eq!(
            steps[0],
            LogStep { line: 1, step: 0, evidence: Evidence::pass_rates(vec![3, 17], vec![0.25, 1.0]) }
        );
        assert_eq!(
            steps[1],
            LogStep { line: 4, step: 1, evidence: Evidence::counts(vec![5, 9], vec![4.0, 0.0], vec![12.0, 3.0]) }
        );
        // Integer pass rates are numbers too; a resumed pool starts at its own step.
        let steps = parse_all("{\"step\": 7, \"tasks\": [0], \"pass_rates\": [1]}\n", 7).unwrap();
        assert_eq!(steps[0].evidence, Evidence::pass_rates(vec![0], vec![1.0]));
        assert!(parse_all("", 0).unwrap().is_empty());
        assert!(parse_all("\n\n", 0).unwrap().is_empty());
    }

    #[test]
    fn every_error_names_file_and_line() {
        let cases: &[(&str, &str)] = &[
            ("{\"step\": 1, \"tasks\": [3, 17], \"pass_rates\": [0.25, 1.0]", "invalid JSON"),
            ("[1, 2]", "expected a JSON object"),
            ("{\"step\": 1, \"tasks\": [1], \"pass_rates\": [0.5], \"extra\": 1}", "unknown field `extra`"),
            ("{\"tasks\": [1], \"pass_rates\": [0.5]}", "missing field `step`"),
            ("{\"step\": -1, \"tasks\": [1], \"pass_rates\": [0.5]}", "`step` must be a non-negative integer"),
            ("{\"step\": 1.0, \"tasks\": [1], \"pass_rates\": [0.5]}", "`step` must be a non-negative integer"),
            ("{\"step\": 1, \"pass_rates\": [0.5]}", "missing field `tasks`"),
            ("{\"step\": 1, \"tasks\": 3, \"pass_rates\": [0.5]}", "`tasks` must be an array"),
            ("{\"step\": 1, \"tasks\": [], \"pass_rates\": []}", "`tasks` is empty"),
            (
                "{\"step\": 1, \"tasks\": [1.5], \"pass_rates\": [0.5]}",
                "`tasks[0]` must be a non-negative integer task id",
            ),
            (
                "{\"step\": 1, \"tasks\": [\"1\"], \"pass_rates\": [0.5]}",
                "`tasks[0]` must be a non-negative integer task id",
            ),
            (
                "{\"step\": 1, \"tasks\": [-2], \"pass_rates\": [0.5]}",
                "`tasks[0]` must be a non-negative integer task id",
            ),
            ("{\"step\": 1, \"tasks\": [1]}", "missing the outcomes"),
            ("{\"step\": 1, \"tasks\": [1], \"pass_rates\": [0.5], \"successes\": [1], \"failures\": [1]}", "not both"),
            ("{\"step\": 1, \"tasks\": [1], \"pass_rates\": [0.5], \"failures\": [1]}", "not both"),
            ("{\"step\": 1, \"tasks\": [1], \"successes\": [1]}", "`successes` needs `failures`"),
            ("{\"step\": 1, \"tasks\": [1], \"failures\": [1]}", "`failures` needs `successes`"),
            ("{\"step\": 1, \"tasks\": [1, 2], \"pass_rates\": [0.5]}", "`pass_rates` has 1 values for 2 tasks"),
            (
                "{\"step\": 1, \"tasks\": [1], \"successes\": [1, 2], \"failures\": [1]}",
                "`successes` has 2 values for 1 tasks",
            ),
            (
                "{\"step\": 1, \"tasks\": [1], \"successes\": [1], \"failures\": []}",
                "`failures` has 0 values for 1 tasks",
            ),
            (
                "{\"step\": 1, \"tasks\": [1, 4], \"pass_rates\": [0.5, 1.5]}",
                "task 4: pass rate 1.5 is not a number in [0, 1]",
            ),
            (
                "{\"step\": 1, \"tasks\": [1, 4], \"pass_rates\": [0.5, 1.00000001]}",
                "task 4 (`pass_rates[1]`): pass rate 1.00000001 is outside [0, 1]",
            ),
            ("{\"step\": 1, \"tasks\": [1, 4], \"pass_rates\": [-0.25, 0.5]}", "task 1: pass rate -0.25 is not"),
            ("{\"step\": 1, \"tasks\": [1, 4], \"pass_rates\": [0.5, \"NaN\"]}", "task 4 (`pass_rates[1]`): NaN"),
            (
                "{\"step\": 1, \"tasks\": [1, 4], \"pass_rates\": [0.5, null]}",
                "task 4 (`pass_rates[1]`): expected a number, got null",
            ),
            (
                "{\"step\": 1, \"tasks\": [6], \"successes\": [-1], \"failures\": [3]}",
                "task 6: counts successes=-1, failures=3 are invalid: counts must not be negative",
            ),
            ("{\"step\": 1, \"tasks\": [6], \"successes\": [1.5], \"failures\": [3]}", "not a whole number"),
            (
                "{\"step\": 1, \"tasks\": [6], \"successes\": [10], \"failures\": [7]}",
                "task 6: counts successes=10, failures=7 are invalid: successes + failures exceeds m = 16",
            ),
            ("{\"step\": 1, \"tasks\": [6], \"successes\": [0], \"failures\": [0]}", "at least one rollout"),
            (
                "{\"step\": 1, \"tasks\": [20], \"pass_rates\": [0.5]}",
                "task id 20 (position 0 of the batch) is out of range: the pool has 20 tasks",
            ),
            (
                "{\"step\": 1, \"tasks\": [2, 5, 2], \"pass_rates\": [0.5, 0.5, 0.5]}",
                "task 2 appears more than once in one batch",
            ),
            ("{\"step\": 2, \"tasks\": [1], \"pass_rates\": [0.5]}", "step 2 is not consecutive: expected step 1"),
            ("{\"step\": 0, \"tasks\": [1], \"pass_rates\": [0.5]}", "step 0 is not consecutive: expected step 1"),
        ];
        for (line, want) in cases {
            // The bad line is line 3, after a good line and a blank one.
            let e = err(&format!("{L0}\n{line}\n{L0}"));
            assert!(e.starts_with("log.jsonl:3: "), "{line}: {e}");
            assert!(e.contains(want), "{line}: expected `{want}` in `{e}`");
        }
        let e = err("{\"step\": 1, \"tasks\": [1], \"pass_rates\": [0.5]}\n");
        assert!(
            e.starts_with("log.jsonl:1: ") && e.contains("first logged step is 1, but the pool is at step 0"),
            "{e}"
        );
    }

    #[test]
    fn stops_after_the_first_error() {
        let text = format!("{L0}garbage\n{{\"step\": 1, \"tasks\": [1], \"pass_rates\": [0.5]}}\n");
        let mut log = ReplayLog::from_reader(text.as_bytes(), "log.jsonl", 0);
        assert!(log.next().unwrap().is_ok());
        assert!(log.next().unwrap().is_err());
        assert!(log.next().is_none());
    }

    #[test]
    fn without_limits_only_pool_checks_are_left_out() {
        let text = "{\"step\": 0, \"tasks\": [999], \"successes\": [40], \"failures\": [60]}\n";
        let steps: Vec<_> = ReplayLog::from_reader(text.as_bytes(), "l.jsonl", 0).collect::<Result<_>>().unwrap();
        assert_eq!(steps[0].evidence.tasks, vec![999]);
        let text = "{\"step\": 0, \"tasks\": [9, 9], \"pass_rates\": [0.5, 0.5]}\n";
        assert!(ReplayLog::from_reader(text.as_bytes(), "l.jsonl", 0).next().unwrap().is_err());
    }

    #[test]
    fn replay_applies_steps_like_direct_updates() {
        let cfg = Config { rho: 0.0, ..Default::default() };
        let text = format!("{L0}{{\"step\": 1, \"tasks\": [5], \"successes\": [4], \"failures\": [4]}}\n");
        let mut replayed = CpuPool::new(cfg.clone(), 20, None).unwrap();
        let log = ReplayLog::from_reader(text.as_bytes(), "log.jsonl", 0);
        let summary = replay_from(&mut replayed, log).unwrap();
        assert_eq!(summary.steps, 2);
        assert_eq!(summary.last.unwrap().step, 2);
        let mut direct = CpuPool::new(cfg, 20, None).unwrap();
        direct.update(&Evidence::pass_rates(vec![3, 17], vec![0.25, 1.0])).unwrap();
        direct.update(&Evidence::counts(vec![5], vec![4.0], vec![4.0])).unwrap();
        assert_eq!(replayed.to_host().unwrap(), direct.to_host().unwrap());

        // A log that does not start at the pool's step is refused before anything is applied.
        let mut pool = CpuPool::new(Config { rho: 0.0, ..Default::default() }, 20, None).unwrap();
        pool.update(&Evidence::pass_rates(vec![1], vec![0.5])).unwrap();
        let before = pool.to_host().unwrap();
        let e = replay_from(&mut pool, ReplayLog::from_reader(L0.as_bytes(), "log.jsonl", 1)).unwrap_err();
        assert!(e.to_string().contains("pool is at step 1"), "{e}");
        assert_eq!(pool.to_host().unwrap(), before);
    }
}
