"""Critic sampling's driver (coderl_jax.critic_sampling.driver.critic_sample) end to end, on CPU.

A tiny random actor, binary critic and repair model (saved to tmp dirs with a tiny trained
tokenizer, loaded the way `coderl generate` loads them), synthetic problems and a real
2-worker sandbox. Random models write nonsense, so the tests steer the paths with the
initial programs (a reference solution passes the example tests, broken programs fail
them), a stub critic with hand-made probabilities where a specific cut must be forced, and
an executor wrapper that passes every repaired program for the repair+refine path.
"""

import concurrent.futures
import dataclasses
import pathlib
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import critic_sampling_reference  # noqa: E402
from model_utils import tiny_config, v11  # noqa: E402

from coderl_jax import checkpoints, outcomes  # noqa: E402
from coderl_jax import critic_sampling as cs  # noqa: E402
from coderl_jax.critic_sampling import Models, Plan, RepairSeed, Seed, critic_sample  # noqa: E402
from coderl_jax.data import repair as repair_lib  # noqa: E402
from coderl_jax.data import synthetic  # noqa: E402
from coderl_jax.data.tokenizer import train_tokenizer  # noqa: E402
from coderl_jax.decoding import SamplingParams  # noqa: E402
from coderl_jax.loading import load_model  # noqa: E402
from coderl_jax.models.critic import CriticHead, init_critic_params  # noqa: E402
from coderl_jax.models.t5 import init_params  # noqa: E402
from coderl_jax.sandbox import Executor, Verdict  # noqa: E402
from coderl_jax.scoring import Scorer  # noqa: E402

N = 4
MAX_NEW = 16
MAX_SOURCE = 256  # every actor, critic and repair prompt lands in one source bucket
SAMPLING = SamplingParams(num_samples=N, max_new_tokens=MAX_NEW, temperature=1.0, top_p=0.95)
# Broken programs: each fails any problem's example tests, with this outcome and subtype.
WRONG = ("x = (\n", "print(undefined_name)\n", "def f(:\n", "1 / 0\n")
WRONG_VERDICTS = {
    WRONG[0]: (outcomes.COMPILE_ERROR, "syntaxerror"),
    WRONG[1]: (outcomes.RUNTIME_ERROR, "nameerror"),
    WRONG[2]: (outcomes.COMPILE_ERROR, "syntaxerror"),
    WRONG[3]: (outcomes.RUNTIME_ERROR, "zerodivisionerror"),
}


@pytest.fixture(scope="module")
def problems():
    return synthetic.generate_problems("train", 4)


def random_critic_params(config, seed: int) -> dict:
    """`init_critic_params`' layout, built from the (already compiled) T5 init and an eager
    head init: a second jitted init of the whole critic would cost ~8 s of compile here."""
    head = CriticHead(len(outcomes.BINARY_OUTCOMES)).init(
        jax.random.key(seed), jnp.zeros((1, 1, config.d_model)), jnp.ones((1, 1)))
    params = {"backbone": init_params(config, jax.random.key(seed)),
              "head": nn.meta.unbox(head)["params"]}
    abstract = jax.eval_shape(lambda r: init_critic_params(config, 2, r), jax.random.key(0))
    assert jax.tree.structure(params) == jax.tree.structure(abstract)
    return params


@pytest.fixture(scope="module")
def model_root(tmp_path_factory):
    """A folder with actor/, repair/ and critic/ model dirs (tiny, random, one tokenizer)."""
    root = tmp_path_factory.mktemp("critic_sampling_models")
    corpus = synthetic.generate_problems("train", 60)
    tok = train_tokenizer([p.question for p in corpus] + [p.solutions[0] for p in corpus], 512)
    config = v11(tiny_config(vocab_size=512))  # v1.1: varied samples from a random init
    checkpoints.save_model_dir(root / "actor", config, init_params(config, jax.random.key(0)),
                               tokenizer=tok)
    checkpoints.save_model_dir(root / "repair", config, init_params(config, jax.random.key(1)),
                               tokenizer=tok)
    checkpoints.save_model_dir(root / "critic", config, random_critic_params(config, 2),
                               tokenizer=tok, critic_classes=outcomes.BINARY_OUTCOMES)
    return root


@pytest.fixture(scope="module")
def models(model_root):
    """(actor, critic Scorer, repair model), loaded as `coderl generate` loads them."""
    root = model_root
    actor = load_model(str(root / "actor"))
    repair = load_model(str(root / "repair"))
    critic = Scorer.load(str(root / "critic"))
    assert critic.classes == outcomes.BINARY_OUTCOMES
    return actor, critic, repair


@pytest.fixture(scope="module")
def executor():
    with Executor(num_workers=2, timeout=4.0) as ex:
        yield ex


class StubCritic:
    """A binary critic whose p(Pass | w_1..t) is 0.6 everywhere except 0.9 at token
    `peak` (clipped to the program's last token), so `refine_cut` = peak + 1."""

    classes = outcomes.BINARY_OUTCOMES

    def __init__(self, config, peak: int):
        self.config, self.peak = config, peak

    def critic_probs(self, prompt_ids, program_ids):
        out = []
        for ids in program_ids:
            p = np.full(len(ids), 0.6)
            p[min(self.peak, len(ids) - 1)] = 0.9
            out.append(np.stack([1 - p, p], axis=-1).astype(np.float32))
        return out


class PassRepairs:
    """An executor that judges the given programs for real and passes every other one
    (i.e. every repaired program): forces the repair+refine path."""

    def __init__(self, executor, judged):
        self.executor, self.judged = executor, set(judged)

    def submit(self, problem, code, *, tests="hidden"):
        if code in self.judged:
            return self.executor.submit(problem, code, tests=tests)
        future = concurrent.futures.Future()
        future.set_result(Verdict(outcomes.PASSED_TEST, None, (True,),
                                  outcomes.RETURNS[outcomes.PASSED_TEST]))
        return future


def prefix_text(tokenizer, program: str, prefix_len: int) -> str:
    ids = tokenizer.encode(program, add_special_tokens=False) + [tokenizer.eos_token_id]
    return tokenizer.decode(ids[:prefix_len], skip_special_tokens=True)


def run(problems, models, executor, *, critic=None, repair=None, **kwargs):
    actor, default_critic, _ = models
    return critic_sample(problems, Models(actor, critic or default_critic, repair), executor,
                         SAMPLING, max_source_length=MAX_SOURCE, batch_size=2, **kwargs)


# ------------------------------------------------------------------------------ refine

def test_refine_continues_the_planned_prefix_of_passing_programs(problems, models, executor):
    actor, critic, _ = models
    tok = actor.tokenizer
    initial = [[p.solutions[0], *WRONG[:3]] for p in problems]
    initial[0] = [problems[0].solutions[0], WRONG[0], problems[0].solutions[0], WRONG[1]]
    stub = StubCritic(critic.config, peak=4)  # cut after 5 tokens
    results = run(problems, models, executor, critic=stub, initial=initial)

    assert [r.task_id for r in results] == [p.task_id for p in problems]
    for problem, r, programs in zip(problems, results, initial):
        assert r.mode == "refine" and r.kept is None
        assert len(r.programs) == N
        assert r.initial == tuple(programs)
        passed = [o == outcomes.PASSED_TEST for o in r.initial_outcomes]
        assert passed == [t == problem.solutions[0] for t in programs]
        assert r.num_passed == sum(passed)
        assert r.repaired == () and r.repair_plan is None
        assert r.prefix_lens == (5,) * N
        for program, k in zip(r.programs, cs.seed_rows(r.plan.refine)):
            seed = r.plan.refine[k]
            assert program.startswith(prefix_text(tok, programs[seed.source], seed.prefix_len))
    # Two passing programs, equal scores: ties by index, N split 2 + 2.
    assert results[0].plan == Plan(refine=(Seed(0, 5, 2), Seed(2, 5, 2)))
    assert results[1].plan == Plan(refine=(Seed(0, 5, 4),))


def test_a_prefix_longer_than_the_budget_is_clipped(problems, models, executor):
    actor, critic, _ = models
    tok = actor.tokenizer
    initial = [[p.solutions[0], *WRONG[:3]] for p in problems[:2]]
    # The peak on the last token (EOS): the whole reference is the seed, longer than MAX_NEW.
    results = run(problems[:2], models, executor, critic=StubCritic(critic.config, 10**6),
                  initial=initial)
    for problem, r in zip(problems, results):
        ids = tok.encode(problem.solutions[0], add_special_tokens=False)
        assert len(ids) + 1 > MAX_NEW
        assert r.plan == Plan(refine=(Seed(0, len(ids) + 1, N),))
        assert r.prefix_lens == (MAX_NEW,) * N
        # The forced prefix fills the budget: every program is exactly those tokens.
        assert r.programs == (tok.decode(ids[:MAX_NEW]),) * N


# ------------------------------------------------------------------------------ repair

def test_repair_without_passing_programs(problems, models, executor, monkeypatch):
    _, _, repair = models
    calls = []
    real_prompt = repair_lib.repair_prompt

    def spy(problem, program, outcome, error_type, *args):
        calls.append((problem.task_id, program, outcome, error_type))
        return real_prompt(problem, program, outcome, error_type, *args)

    monkeypatch.setattr(repair_lib, "repair_prompt", spy)
    initial = [list(WRONG)] * len(problems)
    # Without a tokenizer of its own, the repair model reads the actor's.
    results = run(problems, models, executor, initial=initial,
                  repair=dataclasses.replace(repair, tokenizer=None), repair_top_m=3)
    expected_calls = []
    for problem, r in zip(problems, results):
        assert r.num_passed == 0 and r.kept is None
        assert r.initial_outcomes == tuple(WRONG_VERDICTS[w][0] for w in WRONG)
        # min(M, |F|) = 3 seeds, N = 4 split 2 + 1 + 1, best critic score first.
        assert r.plan.mode == "repair"
        assert [s.count for s in r.plan.repair] == [2, 1, 1]
        assert len({s.source for s in r.plan.repair}) == 3
        assert len(r.repaired) == N and len(r.repaired_outcomes) == N
        assert r.repair_plan is not None
        # A random repair model fixes nothing: the repaired programs are the final ones.
        assert r.mode == "repair" and r.repair_plan.mode == "repair"
        assert r.programs == r.repaired and r.prefix_lens == ()
        for k in cs.seed_rows(r.plan.repair):
            s = r.plan.repair[k]
            wrong = WRONG[s.source]
            expected_calls.append((problem.task_id, wrong, *WRONG_VERDICTS[wrong]))
    # One repair prompt per row: the failed program, its example-test outcome and subtype.
    assert calls == expected_calls


def test_repaired_programs_that_pass_are_refined(problems, models, executor):
    actor, critic, repair = models
    tok = actor.tokenizer
    initial = [list(WRONG)] * 2
    results = run(problems[:2], models, PassRepairs(executor, WRONG),
                  critic=StubCritic(critic.config, peak=1), initial=initial, repair=repair,
                  repair_top_m=2)
    for r in results:
        assert r.mode == "repair+refine"
        assert r.plan.repair == (RepairSeed(0, 2), RepairSeed(1, 2))  # all score 0.9
        assert r.repaired_outcomes == (outcomes.PASSED_TEST,) * N
        assert r.repair_plan.mode == "refine" and r.repair_plan.total == N
        assert len(r.programs) == N and len(r.prefix_lens) == N
        for program, plen, k in zip(r.programs, r.prefix_lens,
                                    cs.seed_rows(r.repair_plan.refine)):
            seed = r.repair_plan.refine[k]
            assert plen == min(seed.prefix_len, MAX_NEW)
            assert program.startswith(prefix_text(tok, r.repaired[seed.source], plen))


# ------------------------------------------------------------------------------ kept as is

def test_without_repair_model_or_example_tests_the_initial_programs_are_kept(
        problems, models, executor):
    actor, critic, _ = models
    probs = list(problems)
    probs[3] = dataclasses.replace(probs[3], example_tests=())
    initial = [[probs[0].solutions[0], *WRONG[:3]], list(WRONG), list(WRONG), list(WRONG)]
    results = run(probs, models, executor, critic=StubCritic(critic.config, 2),
                  initial=initial)
    assert [r.mode for r in results] == ["refine", "none", "none", "none"]
    assert [r.kept for r in results] == [None, cs.KEPT_NO_REPAIR_MODEL,
                                         cs.KEPT_NO_REPAIR_MODEL, cs.KEPT_NO_EXAMPLE_TESTS]
    for r, programs in zip(results[1:], initial[1:]):
        assert r.programs == tuple(programs) and r.num_passed == 0
    # The repair plan that could not run is still reported; the untested problem has none.
    assert results[1].plan.mode == "repair" and results[1].repair_plan is None
    assert results[3].plan == Plan() and results[3].initial_outcomes == ()
    assert cs.summarize(results) == {
        "problems": 4, "refine": 1, "repair": 0, "repair+refine": 0, "none": 3,
        cs.KEPT_NO_EXAMPLE_TESTS: 1, cs.KEPT_NO_REPAIR_MODEL: 2, "no_initial_pass": 2}


# ------------------------------------------------------------------------------ sampling

def test_sampled_runs_are_deterministic(problems, models, executor):
    _, _, repair = models
    a = run(problems, models, executor, repair=repair, seed=3)
    b = run(problems, models, executor, repair=repair, seed=3)
    assert a == b
    for r in a:
        assert len(r.initial) == N and len(r.programs) == N
        assert r.mode in cs.MODES
    c = run(problems, models, executor, repair=repair, seed=4)
    assert [r.initial for r in c] != [r.initial for r in a]


class PassTasks:
    """An executor that passes every program of the given tasks and judges the others."""

    def __init__(self, executor, task_ids):
        self.executor, self.task_ids = executor, set(task_ids)

    def submit(self, problem, code, *, tests="hidden"):
        if problem.task_id not in self.task_ids:
            return self.executor.submit(problem, code, tests=tests)
        future = concurrent.futures.Future()
        future.set_result(Verdict(outcomes.PASSED_TEST, None, (True,),
                                  outcomes.RETURNS[outcomes.PASSED_TEST]))
        return future


def reference(problems, models, executor, *, repair, **kwargs):
    """The driver as it was before its rounds became functions (critic_sampling_reference)."""
    actor, critic, _ = models
    repair_tuple = (repair.config, repair.params, repair.tokenizer)
    return critic_sampling_reference.critic_sample(
        problems, (actor.config, actor.params, actor.tokenizer), critic, executor, SAMPLING,
        repair=repair_tuple, max_source_length=MAX_SOURCE, batch_size=2, **kwargs)


def test_driver_equals_the_reference_on_sampled_refine_and_repair(problems, models, executor):
    """Sampled initial programs; the first problem's all pass (refine), the others' fail
    (repair): every program, plan and outcome equals the old driver's."""
    _, _, repair = models
    judge = PassTasks(executor, [problems[0].task_id])
    new = run(problems, models, judge, repair=repair, repair_top_m=2, seed=5)
    old = reference(problems, models, judge, repair=repair, repair_top_m=2, seed=5)
    assert new == old
    assert new[0].mode == "refine" and {r.mode for r in new[1:]} == {"repair"}


def test_driver_equals_the_reference_on_repair_then_refine(problems, models, executor):
    _, _, repair = models
    judge = PassRepairs(executor, WRONG)
    initial = [list(WRONG)] * 2
    new = run(problems[:2], models, judge, repair=repair, repair_top_m=2, initial=initial)
    old = reference(problems[:2], models, judge, repair=repair, repair_top_m=2,
                    initial=initial)
    assert new == old
    assert [r.mode for r in new] == ["repair+refine"] * 2


def test_seed_rows():
    assert cs.seed_rows((Seed(3, 1, 2), Seed(0, 4, 1))) == [0, 0, 1]
    assert cs.seed_rows((RepairSeed(2, 1), RepairSeed(0, 3))) == [0, 1, 1, 1]
    assert cs.seed_rows(()) == []


def test_bad_arguments_are_clear_errors(problems, models, executor):
    actor, critic, _ = models
    with pytest.raises(ValueError, match="greedy"):
        critic_sample(problems, Models(actor, critic), executor,
                      SamplingParams(num_samples=N, max_new_tokens=MAX_NEW, greedy=True))
    with pytest.raises(ValueError, match="N = 4 program"):
        run(problems, models, executor, initial=[list(WRONG[:3])] * len(problems))
    four_way = dataclasses.replace(critic, classes=outcomes.OUTCOMES[:3])
    with pytest.raises(ValueError, match="PassedTest"):
        run(problems, models, executor, critic=four_way, initial=[list(WRONG)] * 4)


def test_generate_cli_writes_samples_and_trace(problems, model_root, tmp_path):
    """`coderl generate --critic-sampling` (eval/generate.py): N lines per problem and the
    per-problem trace beside them."""
    import json

    from coderl_jax import cli

    root, data, out = model_root, tmp_path / "problems.jsonl", tmp_path / "samples.jsonl"
    synthetic.save_problems(problems[:2], data)
    rc = cli.main(["generate", "--model", str(root / "actor"), "--dataset", "synthetic",
                   "--data", str(data), "--out", str(out), "--num-samples", str(N),
                   "--max-new-tokens", str(MAX_NEW), "--max-source-length", str(MAX_SOURCE),
                   "--batch-size", "2", "--critic-sampling", "--critic", str(root / "critic"),
                   "--repair-model", str(root / "repair"), "--repair-top-m", "2",
                   "--workers", "2"])
    assert rc == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["task_id"] for r in lines] == [p.task_id for p in problems[:2] for _ in range(N)]
    trace = json.loads(pathlib.Path(f"{out}.critic_sampling.json").read_text())
    assert trace["summary"]["problems"] == 2
    assert [p["task_id"] for p in trace["problems"]] == [p.task_id for p in problems[:2]]
    assert {p["mode"] for p in trace["problems"]} <= set(cs.MODES)
