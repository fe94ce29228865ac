"""One process of the two-process check (run by test_trl.py under torchrun, on the CPU with gloo):
trains a few steps with BotsGRPOTrainer and writes what it selected, fed and scored to
``<out>/rank<r>.json``."""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tiny  # noqa: E402  (sets the offline environment first)

from bots.trl import BotsGRPOTrainer  # noqa: E402


def main(out: str) -> None:
    seen = []  # (row, completion, reward) of this process's completions, in order

    def recording_reward(prompts, completions, target, row, **kwargs):
        rewards = tiny.letter_reward(prompts, completions, target)
        seen.append([[int(r), c, x] for r, c, x in zip(row, completions, rewards)])
        return rewards

    tok = tiny.tokenizer()
    # 2 processes x 4 completions each = one round of 2 prompts x 4 generations
    args = tiny.grpo_args(os.path.join(out, "run"), per_device_train_batch_size=4, max_steps=6, ddp_backend="gloo")
    trainer = BotsGRPOTrainer(
        model=tiny.model(tok), reward_funcs=recording_reward, args=args, train_dataset=tiny.dataset(),
        processing_class=tok, bots_config={"feature_keys": ["weak_pass_rate", "strong_pass_rate"]},
    )
    trainer.train()
    rank = trainer.accelerator.process_index
    rounds = [
        {"step": r["step"], "tasks": [int(t) for t in r["tasks"]], "successes": r["successes"].tolist(),
         "failures": r["failures"].tolist(), "fed": r["fed"]}
        for r in trainer.bots_rounds
    ]
    state = trainer.pool.state()
    result = {
        "rank": rank, "world": trainer.accelerator.num_processes, "rounds": rounds, "seen": seen,
        "pool_step": trainer.pool.step, "alpha": state["alpha"].tolist(), "beta": state["beta"].tolist(),
    }
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1])
