"""The declarative unlearning method: a schedule of phases and an optax transform factory.

A `Method` says:
  * which loss terms it needs and when: a per-epoch schedule of `Phase`s, each a pass over the
    retain or the forget set computing some terms (the other set, if a term needs it, is cycled
    alongside in paired batches), with an explicit BatchNorm mode;
  * how the per-term gradients become one update: `tx`, a factory of keyword hyperparameters
    returning an optax transform whose first link is `combine_terms` (see transforms.py). The
    runner lifts it with `optax.inject_hyperparams(tx, hyperparam_dtype=jnp.float32)`, so every
    hyperparameter in its signature is member-axis data;
  * whether it uses the forget examples, its default hyperparameters, a default tuning grid, its
    static `options` (strings, flags: they change the program, so they are not member data) and
    how it deviates from its reference code (`deviations`).

`tx` may also ask, by parameter name, for values the runner computes per member:
  saliency_mask     SalUn's {0,1} mask (needs the hyperparameter `salient_fraction`);
  layer_mask        {0,1} on the member's last `last_layers` layers (CF-k, EU-k), whose
                    BatchNorm statistics are then the only ones that update;
  num_active        the member's active parameter count (for width-normalised penalties);
  steps_per_epoch   optimizer updates per epoch (all phases);
  total_steps       epochs * steps_per_epoch.
Hyperparameters that are not `tx` arguments are loss or schedule data: `temperature` (KL terms),
a phase's `while_epoch_below` (SCRUB's `msteps`), `salient_fraction`.

`start` says where the gradient phases begin: at the original ('original'), with its last
`last_layers` layers freshly initialised from `init_variables` ('reinit_last_layers', EU-k) or
with layer `negated_layer` multiplied by -1 ('negate_layer', weight negation); layers are
`models.layers.layer_groups`.

Two kinds are not gradient phases: 'retrain' (the trainer on the retain set, from the given
initial variables) and 'ssd' (training-free dampening).
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Mapping, Optional

import optax

from unlearn_jax.methods import grid as grid_lib
from unlearn_jax.methods import terms as terms_lib

CONTEXT_ARGS = ("saliency_mask", "layer_mask", "num_active", "steps_per_epoch", "total_steps")
MASK_ARGS = ("saliency_mask", "layer_mask")   # context arguments that are parameter trees
KINDS = ("gradient", "retrain", "ssd")
# start -> the hyperparameter it needs (None: none).
STARTS = {"original": None, "reinit_last_layers": "last_layers", "negate_layer": "negated_layer"}
POOLS = ("retain", "forget")


@dataclasses.dataclass(frozen=True)
class Phase:
  """One pass of an epoch.

  Attributes:
    name: label used in metrics ('<phase>/<term>').
    terms: loss terms computed at each step (names in terms.TERMS).
    pool: 'retain' or 'forget': the set whose pass defines the phase's steps (ceil(n / batch)
      steps; the last batch is topped up from a second permutation so shapes stay static). If a
      term needs the other set, its batches are cycled alongside (paired batches).
    bn_train: True: the student's BatchNorm uses batch statistics and updates its running
      averages (PyTorch `.train()`); False: frozen running statistics.
    while_epoch_below: name of a hyperparameter m; the phase runs at epoch e (0-based) only for
      members with e < m (SCRUB's msteps). Per-member data: members that are off keep their state.
    steps_only: True: `pool` only sets the number of steps, none of the terms uses it (MinNorm-OG
      steps once per forget batch on retain batches alone).
    output_constraints: m > 0: each step also computes the gradients of the student's largest
      logit on the first m examples of its retain batch (frozen BatchNorm) and hands them to
      the optimizer as the extra argument `constraint_grads` (a tree with a leading m axis).
  """
  name: str
  terms: tuple[str, ...]
  pool: str
  bn_train: bool = True
  while_epoch_below: Optional[str] = None
  steps_only: bool = False
  output_constraints: int = 0

  def __post_init__(self):
    if self.pool not in POOLS:
      raise ValueError(f"Unknown phase pool {self.pool!r}; allowed: {POOLS}.")
    if not self.terms:
      raise ValueError(f"phase {self.name!r} has no loss terms.")
    groups = terms_lib.batch_groups(self.terms)  # also validates the names
    if self.output_constraints < 0 or (self.output_constraints and "retain" not in groups):
      raise ValueError(f"phase {self.name!r}: output_constraints={self.output_constraints} "
                       "needs a retain batch and must be >= 0.")
    if self.pool not in groups and not self.steps_only:
      raise ValueError(f"phase {self.name!r} iterates the {self.pool} set but none of its terms "
                       f"{self.terms} uses it.")


# Static options -> overrides of a method's `tx` / `phases`. It must return module-level
# factories (not fresh closures): compiled steps are cached per factory.
OptionsHook = Callable[[Mapping[str, Any]], Mapping[str, Any]]


@dataclasses.dataclass(frozen=True, eq=False)
class Method:
  """A declarative unlearning method (see the module docstring).

  Attributes:
    options: static settings by name with their defaults, overridable in `with_hparams`.
    apply_options: optional hook `options -> {'tx': ..., 'phases': ...}` that derives the
      transform and the phases from the options (validating their values); applied on creation
      and to every copy (`derived_from`: the options they were derived from, set here).
    deviations: how this method departs from its reference implementation, and how to reach
      the reference setting where an option or hyperparameter does.
    start: where the gradient phases begin (see the module docstring; keys of STARTS).
  """
  name: str
  description: str
  uses_forget: bool
  defaults: Mapping[str, float]
  grid: Mapping[str, tuple[float, ...]]
  epochs: int
  kind: str = "gradient"
  phases: tuple[Phase, ...] = ()
  tx: Optional[Callable[..., optax.GradientTransformation]] = None
  options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  apply_options: Optional[OptionsHook] = None
  deviations: str = ""
  derived_from: Optional[Mapping[str, Any]] = dataclasses.field(default=None, repr=False)
  start: str = "original"

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f"Unknown method kind {self.kind!r}; allowed: {KINDS}.")
    if self.start not in STARTS:
      raise ValueError(f"{self.name}: unknown start {self.start!r}; allowed: {list(STARTS)}.")
    if self.apply_options is not None:
      self._derive_from_options()
    for k, v in self.defaults.items():
      if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{self.name}: hyperparameter {k!r} must be a number, got {v!r}.")
    bad = sorted(set(self.grid) - set(self.defaults))
    if bad:
      raise ValueError(f"{self.name}: grid names {bad} are not hyperparameters "
                       f"{sorted(self.defaults)}.")
    if self.kind == "gradient":
      self._check_gradient_method()

  def _derive_from_options(self):
    # A copy (with_hparams, dataclasses.replace) carries the fields derived from the options it
    # was made from (`derived_from`); they are derived again from the new options. A field set
    # by hand instead would be silently replaced, so that is refused.
    carried = ({} if self.derived_from is None else self.apply_options(self.derived_from))
    for field, value in self.apply_options(self.options).items():
      current = getattr(self, field)
      if current not in (None, ()) and current != carried.get(field):
        raise ValueError(f"{self.name}: {field} is derived from the options; pass "
                         "apply_options=None to set it by hand.")
      object.__setattr__(self, field, value)
    object.__setattr__(self, "derived_from", dict(self.options))

  def _check_gradient_method(self):
    if not self.phases or self.tx is None:
      raise ValueError(f"{self.name}: a gradient method needs phases and a tx factory.")
    sig = inspect.signature(self.tx).parameters
    missing = sorted(set(sig) - set(self.defaults) - set(CONTEXT_ARGS))
    if missing:
      raise ValueError(f"{self.name}: tx arguments {missing} have no default hyperparameter.")
    if "saliency_mask" in sig and "salient_fraction" not in self.defaults:
      raise ValueError(f"{self.name}: a saliency_mask needs the hyperparameter salient_fraction.")
    if "layer_mask" in sig and "last_layers" not in self.defaults:
      raise ValueError(f"{self.name}: a layer_mask needs the hyperparameter last_layers.")
    needed = STARTS[self.start]
    if needed is not None and needed not in self.defaults:
      raise ValueError(f"{self.name}: start {self.start!r} needs the hyperparameter {needed}.")
    terms = [t for p in self.phases for t in p.terms]
    if "temperature" in terms_lib.term_needs(terms) and "temperature" not in self.defaults:
      raise ValueError(f"{self.name}: KL terms need the hyperparameter temperature.")
    for p in self.phases:
      if p.while_epoch_below and p.while_epoch_below not in self.defaults:
        raise ValueError(f"{self.name}: phase {p.name!r} is gated by unknown hyperparameter "
                         f"{p.while_epoch_below!r}.")
    touches_forget = ("forget" in terms_lib.term_groups(terms)) or "saliency_mask" in sig
    if touches_forget != self.uses_forget:
      raise ValueError(f"{self.name}: uses_forget={self.uses_forget} but its terms/mask "
                       f"{'do' if touches_forget else 'do not'} use the forget set.")

  @property
  def needs_init_variables(self) -> bool:
    """Whether a gradient method needs fresh initial variables (`MemberInputs.init_variables`):
    as a random teacher or as its re-initialised layers. ('retrain' always does.)"""
    terms = [t for p in self.phases for t in p.terms]
    return (self.start == "reinit_last_layers"
            or "bad_teacher" in terms_lib.term_needs(terms))

  @property
  def tx_hparam_names(self) -> tuple[str, ...]:
    """Hyperparameters that go to the optimizer factory (lifted into the optimizer state)."""
    if self.tx is None:
      return ()
    return tuple(p for p in inspect.signature(self.tx).parameters if p not in CONTEXT_ARGS)

  @property
  def context_args(self) -> tuple[str, ...]:
    if self.tx is None:
      return ()
    return tuple(p for p in inspect.signature(self.tx).parameters if p in CONTEXT_ARGS)

  @property
  def data_hparam_names(self) -> tuple[str, ...]:
    """Hyperparameters used by losses, phase gates or preparation rather than the optimizer."""
    return tuple(k for k in self.defaults if k not in self.tx_hparam_names)

  def grid_points(self) -> list[dict[str, float]]:
    """The default grid as a list of {name: value}, names in grid order, last name fastest."""
    return grid_lib.grid_points(self.grid)

  def with_hparams(self, **overrides) -> "Method":
    """A copy with new default hyperparameters or options; unknown names raise ValueError."""
    allowed = set(self.defaults) | set(self.options)
    unknown = sorted(set(overrides) - allowed)
    if unknown:
      raise ValueError(f"Unknown hyperparameter(s) {unknown} for method {self.name!r}; "
                       f"allowed: {sorted(self.defaults)}"
                       + (f", options: {sorted(self.options)}" if self.options else "") + ".")
    defaults = dict(self.defaults)
    options = dict(self.options)
    for k, v in overrides.items():
      if k in self.defaults:
        defaults[k] = float(v)
      else:
        options[k] = v
    return dataclasses.replace(self, defaults=defaults, options=options)
