"""CodeRL's return estimators: per-sample returns + critic values -> signed per-token weights.

The actor's RL objective is one weighted token cross-entropy (`coderl_jax/training/losses.py`):

    L_rl = - sum_{i,t} w[i, t] * log p(w_t | w_<t, x_i) / normalizer

so a positive weight pushes the sampled token's probability up and a negative one pushes it
down. This module computes the *unnormalised* w[i, t] on the host, as numpy (no JAX here);
the normaliser (number of RL tokens, or rows) is applied by whoever builds the batch.

Every estimator factors as

    w[i, t] = advantage[i] * scale[i, t] * mask[i, t]

advantage [N] from the returns (what the sample is credited with), scale [N, T] from the
tokens (how that credit is spread over them). Names follow the paper's Table 2 (CodeRL, Le et
al. 2022, Sec. 4 ablation of the return estimate), plus one group baseline beyond it:

| name       | alias | advantage[i]                   | scale[i, t]            |
|------------|-------|--------------------------------|------------------------|
| "baseline" | "A"   | r(W^s_i) - r(W^b_i)            | 1                      |
| "critic"   | "B"   | r(W^s_i)        (no baseline)  | q_i(t)                 |
| "decay"    | "C"   | r(W^s_i) - r(W^b_i)            | d_i(t) (linear decay)  |
| "coderl"   | "D"   | r(W^s_i) - r(W^b_i)            | q_i(t)   (the default) |
| "group"    |       | r(W^s_i) - mean_{group(i)} r   | q_i(t)                 |
| "pass_at_k"|       | Pass@k Training (rl/passk.py)  | 1                      |
| "positive_ce" |    | 1 if the sample passed, else 0 | 1                      |

* r(W^s_i): the sample's return (`coderl_jax.outcomes.RETURNS` of its outcome); r(W^b_i):
  the return of the greedy program of the same problem (the paper's baseline, Sec. 3.2).
* q_i(t): the critic's softmax probability of the sample's *true* outcome at token t
  (`coderl_jax.models.critic`), in [0, 1]: tokens the critic already associates with the
  outcome get more of the credit (or blame).
* d_i(t) = (T_i - t) / T_i, T_i = mask[i].sum(), t the 0-based position of the token among
  the sample's real tokens: 1 at the first token, 1/T_i at the last real one (its EOS). The
  paper's variant C replaces the critic by this hand-made prior that early tokens matter
  more. With a left-aligned mask (the usual case) t is simply the column index; with any
  other mask the real tokens are counted in order, so the decay never depends on padding.
* "group" (GRPO / RLOO style): the baseline is the mean return of the samples that share the
  group id (problem), self included, so no greedy decode is needed. Options:
    - `std_scale=False`: divide the advantage by (std of the group's returns + eps), as GRPO
      does. Off by default: CodeRL's returns are graded (-1, -0.6, -0.3, 1), so a group whose
      samples all fail with slightly different errors has a tiny std and its small
      differences would be blown up to unit scale, i.e. the noise between error kinds would
      be amplified as much as the pass/fail signal. The std is the population std (ddof=0)
      of the whole group (self included, also with leave_one_out), so a group of one has
      std 0 and advantage 0 (never NaN).
    - `leave_one_out=False`: RLOO, the baseline is the mean of the *other* samples of the
      group (an unbiased baseline: it does not depend on the sample itself); a group of one
      sample has no others and gets advantage 0.
    - `eps=1e-6`: the std_scale guard.

Estimators live in the `ESTIMATORS` registry (name -> `Estimator`) and are chosen by config
string (`get_estimator` resolves aliases, case-insensitively). `token_weights(name, ...)` and
`advantages(name, ...)` are the one-call conveniences; `RolloutBatch` carries validated
arrays. Options an estimator does not take are errors, never ignored (gin-at-the-edges).

The registry is open: a researcher registers a variant from their own module (imported by
a gin `import` line or `--gin_import`) and selects it with `--gin.ESTIMATOR='mine'`:

    from coderl_jax.rl.returns import register_estimator

    @register_estimator("clipped", requires=("baseline_returns", "token_values"))
    def clipped(batch, limit=0.5):          # batch: RolloutBatch -> weights [N, T]
        adv = np.clip(batch.sample_returns - batch.baseline_returns, -limit, limit)
        return adv[:, None] * batch.token_values
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Mapping

import numpy as np

from coderl_jax.rl.passk import pass_at_k_advantage, positive_advantage

DEFAULT_ESTIMATOR = "coderl"


# ---------------------------------------------------------------------------------------------
# The batch


def _as_vector(name: str, x: Any, n: int | None = None) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a vector [N], got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) (sample_returns' [N]), got {a.shape}")
    return a


def _as_float(name: str, a: np.ndarray) -> np.ndarray:
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)
            or a.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        # InternalError samples have no return (outcomes.py): drop them before this point.
        raise ValueError(f"{name} must be finite (drop samples without a return first)")
    return a


@dataclasses.dataclass(frozen=True)
class RolloutBatch:
    """Validated estimator inputs for N samples of up to T tokens (numpy arrays).

    sample_returns   [N] float64: r(W^s) of each sampled program.
    mask             [N, T] float64 of 0/1: real tokens of each sample (up to and including
                     its EOS).
    baseline_returns [N] float64 or None: r(W^b), the greedy program's return for the same
                     problem (needed by "baseline", "decay", "coderl").
    group_ids        [N] int64 or None: problem id of each sample; samples of one problem
                     share an id (needed by "group").
    token_values     [N, T] float64 in [0, 1] or None: q(w_t), the critic's probability of
                     the sample's true outcome at token t (needed by "critic", "coderl",
                     "group"). Values at masked positions are ignored.

    Construction converts and checks everything: shapes, dtypes, finiteness, mask in {0, 1},
    token values in [0, 1]. Errors are ValueErrors naming the field.
    """

    sample_returns: np.ndarray
    mask: np.ndarray
    baseline_returns: np.ndarray | None = None
    group_ids: np.ndarray | None = None
    token_values: np.ndarray | None = None

    def __post_init__(self):
        r = _as_float("sample_returns", _as_vector("sample_returns", self.sample_returns))
        n = r.shape[0]
        mask = np.asarray(self.mask)
        if mask.ndim != 2 or mask.shape[0] != n:
            raise ValueError(f"mask must be [N, T] with N = {n} (sample_returns' length), "
                             f"got shape {mask.shape}")
        mask = _as_float("mask", mask)
        if not np.all((mask == 0) | (mask == 1)):
            raise ValueError("mask must hold only 0 and 1")
        set_ = lambda field, value: object.__setattr__(self, field, value)  # noqa: E731
        set_("sample_returns", r)
        set_("mask", mask)
        if self.baseline_returns is not None:
            b = _as_vector("baseline_returns", self.baseline_returns, n)
            set_("baseline_returns", _as_float("baseline_returns", b))
        if self.group_ids is not None:
            g = _as_vector("group_ids", self.group_ids, n)
            if not (np.issubdtype(g.dtype, np.integer) or (g.size == 0 and g.dtype != bool)):
                raise ValueError(f"group_ids must be integers, got dtype {g.dtype}")
            set_("group_ids", g.astype(np.int64))
        if self.token_values is not None:
            q = np.asarray(self.token_values)
            if q.shape != mask.shape:
                raise ValueError(f"token_values must have shape {mask.shape} (mask's [N, T]), "
                                 f"got {q.shape}")
            q = _as_float("token_values", q)
            if np.any((q < 0) | (q > 1)):
                raise ValueError("token_values must be probabilities in [0, 1] (the critic's "
                                 "softmax at the true outcome, not its logits)")
            set_("token_values", q)

    @property
    def num_samples(self) -> int:
        return int(self.mask.shape[0])

    @property
    def length(self) -> int:
        return int(self.mask.shape[1])


# ---------------------------------------------------------------------------------------------
# Advantages [N] (float64 internally)


def _baseline_advantage(r: np.ndarray, b: np.ndarray, g: np.ndarray) -> np.ndarray:
    """r(W^s) - r(W^b): the paper's greedy baseline (Sec. 3.2)."""
    del g
    return r - b


def _absolute_advantage(r: np.ndarray, b: np.ndarray, g: np.ndarray) -> np.ndarray:
    """r(W^s) itself: no baseline (Table 2, B)."""
    del b, g
    return r


def _group_advantage(r: np.ndarray, b: np.ndarray, g: np.ndarray, *, std_scale: bool = False,
                     leave_one_out: bool = False, eps: float = 1e-6) -> np.ndarray:
    """r - mean of the group's returns (self included, or the others with leave_one_out),
    optionally / (group std + eps). See the module docstring."""
    del b
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if r.size == 0:
        return r
    _, inverse = np.unique(g, return_inverse=True)
    inverse = inverse.reshape(-1)
    count = np.bincount(inverse).astype(np.float64)[inverse]
    total = np.bincount(inverse, weights=r)[inverse]
    mean = total / count
    if leave_one_out:
        others = count - 1
        # A lone sample has no others to compare with: advantage 0, not 0/0.
        adv = np.where(others > 0, r - (total - r) / np.maximum(others, 1), 0.0)
    else:
        adv = r - mean
    if std_scale:
        var = np.bincount(inverse, weights=(r - mean) ** 2)[inverse] / count
        adv = adv / (np.sqrt(var) + eps)
    return adv


# ---------------------------------------------------------------------------------------------
# Token scales [N, T] (float64, arbitrary where mask is 0)


def _ones_scale(batch: RolloutBatch) -> np.ndarray:
    return np.ones_like(batch.mask)


def _critic_scale(batch: RolloutBatch) -> np.ndarray:
    return batch.token_values


def _decay_scale(batch: RolloutBatch) -> np.ndarray:
    """d[i, t] = (T_i - pos) / T_i, pos = 0-based rank of token t among sample i's real tokens."""
    mask = batch.mask
    lengths = mask.sum(axis=1, keepdims=True)
    pos = np.cumsum(mask, axis=1) - 1.0
    return (lengths - pos) / np.maximum(lengths, 1.0)


# ---------------------------------------------------------------------------------------------
# Registry


@dataclasses.dataclass(frozen=True)
class Estimator:
    """A return estimator: w[i, t] = advantage_fn(...)[i] * scale_fn(batch)[i, t] * mask[i, t].

    name: registry key; alias: the paper's Table 2 letter (or None); requires: the optional
    RolloutBatch fields it reads; options: keyword options `advantage_fn` accepts (anything
    else is a ValueError); advantage_fn(r [N], b [N] | None, g [N] | None, **options) -> [N];
    scale_fn(batch) -> [N, T].
    """

    name: str
    alias: str | None
    requires: tuple[str, ...]
    options: tuple[str, ...]
    advantage_fn: Callable[..., np.ndarray] | None
    scale_fn: Callable[[RolloutBatch], np.ndarray] | None
    description: str = ""
    weights_fn: Callable[..., np.ndarray] | None = None  # registered: batch -> w [N, T]

    def _check(self, batch: RolloutBatch, options: Mapping[str, Any], fields) -> None:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            takes = ", ".join(self.options) if self.options else "no options"
            raise ValueError(f"return estimator {self.name!r} got unknown option(s) "
                             f"{', '.join(unknown)}; it takes {takes}")
        for field in fields:
            if getattr(batch, field) is None:
                raise ValueError(f"return estimator {self.name!r} needs {field}")

    def advantages(self, batch: RolloutBatch, **options) -> np.ndarray:
        """Per-sample advantage [N] float32 (the factor that multiplies every token of i)."""
        if self.advantage_fn is None:
            raise ValueError(f"return estimator {self.name!r} was registered as token "
                             "weights; it has no separate per-sample advantage")
        fields = [f for f in self.requires if f != "token_values"]
        self._check(batch, options, fields)
        adv = self.advantage_fn(batch.sample_returns, batch.baseline_returns, batch.group_ids,
                                **options)
        return np.asarray(adv, np.float32)

    def __call__(self, batch: RolloutBatch, **options) -> np.ndarray:
        """Signed token weights w [N, T] float32, exactly 0.0 where mask is 0."""
        self._check(batch, options, self.requires)
        if self.weights_fn is not None:
            w = np.asarray(self.weights_fn(batch, **options), np.float64)
            if w.shape != batch.mask.shape:
                raise ValueError(f"return estimator {self.name!r} returned weights of shape "
                                 f"{w.shape}, expected the mask's {batch.mask.shape}")
        else:
            adv = self.advantage_fn(batch.sample_returns, batch.baseline_returns,
                                    batch.group_ids, **options)
            w = adv[:, None] * self.scale_fn(batch)
        # where, not a product with the mask: padding gets +0.0 whatever the scale holds there.
        return np.where(batch.mask > 0, w, 0.0).astype(np.float32)


_R_B = ("baseline_returns",)
ESTIMATORS: dict[str, Estimator] = {
    e.name: e
    for e in (
        Estimator("baseline", "A", _R_B, (), _baseline_advantage, _ones_scale,
                  "(r - b) * mask: REINFORCE with the greedy baseline, no critic"),
        Estimator("critic", "B", ("token_values",), (), _absolute_advantage, _critic_scale,
                  "r * q * mask: critic token values, no baseline"),
        Estimator("decay", "C", _R_B, (), _baseline_advantage, _decay_scale,
                  "(r - b) * d_t * mask: greedy baseline, linear decay instead of the critic"),
        Estimator("coderl", "D", _R_B + ("token_values",), (), _baseline_advantage,
                  _critic_scale, "(r - b) * q * mask: CodeRL (greedy baseline and critic)"),
        Estimator("group", None, ("group_ids", "token_values"),
                  ("std_scale", "leave_one_out", "eps"), _group_advantage, _critic_scale,
                  "(r - group mean) * q * mask: group baseline (GRPO / RLOO style)"),
        Estimator("pass_at_k", None, ("group_ids",), ("k", "pass_return"),
                  pass_at_k_advantage, _ones_scale,
                  "Pass@k Training's group advantage * mask (rl/passk.py, no critic)"),
        Estimator("positive_ce", None, (), ("pass_return",), positive_advantage, _ones_scale,
                  "[r = 1] * mask: L_ce on the passing samples (paper Table 3)"),
    )
}
ALIASES: dict[str, str] = {e.alias: e.name for e in ESTIMATORS.values() if e.alias}
_FIELDS = ("baseline_returns", "group_ids", "token_values")


def register_estimator(name: str, *, requires: tuple[str, ...] = (), description: str = ""):
    """Decorator: register `fn(batch: RolloutBatch, **options) -> w [N, T]` as estimator
    `name` (the returned weights are zeroed on padding and normalised by the batch builder).

    requires: the optional RolloutBatch fields it reads ("baseline_returns": the greedy
    program's return, so the rollout decodes it; "token_values": the critic's q(w_t);
    "group_ids"). Its keyword parameters after `batch` are its options
    (RLConfig.estimator_options). A taken name or alias is an error.
    """
    unknown = sorted(set(requires) - set(_FIELDS))
    if unknown:
        raise ValueError(f"register_estimator({name!r}): unknown required field(s) {unknown}; "
                         f"choose from {_FIELDS}")

    def register(fn):
        taken = ESTIMATORS.get(name) or ESTIMATORS.get(ALIASES.get(name.upper(), ""))
        if taken is not None and taken.weights_fn is not fn:
            raise ValueError(f"return estimator {name!r} is already registered")
        options = tuple(p.name for p in list(inspect.signature(fn).parameters.values())[1:])
        ESTIMATORS[name] = Estimator(name, None, tuple(requires), options, None, None,
                                     description or (fn.__doc__ or "").strip(), fn)
        return fn
    return register


def get_estimator(name: str) -> Estimator:
    """The estimator registered as `name` or its Table 2 alias ("A".."D"), case-insensitive.

    Unknown names raise ValueError listing the known names and aliases.
    """
    key = str(name).strip()
    for candidate in (key, key.lower()):
        if candidate in ESTIMATORS:
            return ESTIMATORS[candidate]
    for alias, target in ALIASES.items():
        if key.upper() == alias:
            return ESTIMATORS[target]
    known = ", ".join(f"{e.name!r}" + (f" ({e.alias!r})" if e.alias else "")
                      for e in ESTIMATORS.values())
    raise ValueError(f"unknown return estimator {name!r}; known: {known}")


def token_weights(name: str, *, sample_returns, mask, baseline_returns=None, group_ids=None,
                  token_values=None, **options) -> np.ndarray:
    """w [N, T] float32 of estimator `name` (see the module docstring); 0 where mask is 0.

    sample_returns [N], mask [N, T] 0/1, baseline_returns [N], group_ids [N] int,
    token_values [N, T] in [0, 1]: as in `RolloutBatch` (pass those the estimator needs).
    options: the estimator's keyword options (e.g. std_scale=True for "group").
    """
    batch = RolloutBatch(sample_returns=sample_returns, mask=mask,
                         baseline_returns=baseline_returns, group_ids=group_ids,
                         token_values=token_values)
    return get_estimator(name)(batch, **options)


def advantages(name: str, *, sample_returns, baseline_returns=None, group_ids=None,
               **options) -> np.ndarray:
    """Per-sample advantage [N] float32 of estimator `name` (no token scale, no mask).

    "baseline", "decay", "coderl": r - b; "critic": r; "group": r - group mean (options as
    for `token_weights`). token_weights(...)[i, t] == advantages(...)[i] * scale[i, t] on real
    tokens.
    """
    r = _as_vector("sample_returns", sample_returns)
    batch = RolloutBatch(sample_returns=r, mask=np.zeros((r.shape[0], 0)),
                         baseline_returns=baseline_returns, group_ids=group_ids)
    return get_estimator(name).advantages(batch, **options)
