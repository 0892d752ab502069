"""The task registry: env, model, default budget, evaluation protocol, training recipe.

A task owns its *recipe*: the network, normalisation and PPO knobs every preset
trains with, so presets change only the update rule. ``pgu tasks`` lists them.

Evaluation protocols:

* ``bandit``: exact, no sampling. The greedy policy of ``q_θ`` is scored by its expected
  reward ``r̄`` on 4096 fixed contexts (seed 12345), next to the optimal policy's. The
  *objective* (and score) is the area under that greedy curve: its mean over every training
  iteration so far. On this bandit every unbiased policy gradient passes near the optimum
  (0.754) and then decays to its fixed point (0.713 for PG, docs/reproduction.md §1), so the
  value at the last iteration would reward stopping early by accident; the area rewards
  reaching a high value early *and* keeping it, and at a fixed budget it is comparable.
* ``four-rooms``: exact. The greedy policy is rolled out from every start cell with
  slip 0; the score is the fraction of starts that reach the goal within the step cap.
* Gym tasks (``cartpole``, MuJoCo): the evaluator (``core.policy.evaluate_policy``) on the final
  policy: exactly ``eval_episodes`` complete episodes, deterministic (mean action / argmax), env
  seeds ``10_000 + i``, observation normalisation frozen, raw env returns, whatever the number of
  envs the run trained with.

Example::

    >>> get_task("hopper").env_id
    'Hopper-v5'
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

from pgu_rllib.core.policy import EVAL_SEED_BASE, EvalResult, StoredPolicy, evaluate_policy
from pgu_rllib.core.policy import protocol as policy_protocol
from pgu_rllib.rllib import keys

OBJECTIVES = ("train", "eval")  # the tuning objective of an episodic task (see ``Task.protocol``)


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    env_id: str
    model: str
    budget: int  # default env steps of one training run
    eval_episodes: int
    floor: float  # lowest possible episode return: the objective before any episode ends
    recipe: Callable  # (PGUConfig, budget) -> PGUConfig
    metrics: Callable | None = None  # (Algorithm) -> exact per-iteration metrics
    objective_key: str | None = None  # a `metrics` key that is the objective (else episode returns)
    objective_area: bool = False  # objective = mean of that key over every iteration so far
    exact_protocol: str | None = None  # the exact score in words; None: scored by the evaluator's episodes
    eval_env_kwargs: dict = dataclasses.field(default_factory=dict)  # gym.make(env_id, **these) for evaluation

    @property
    def episodic(self) -> bool:
        """Scored by evaluation episodes (``core.policy.evaluate_policy``), not by an exact metric."""
        return self.exact_protocol is None

    def describe(self) -> str:
        return f"{self.env_id}; {self.model}; budget {self.budget:,} env steps; eval: {self.evaluation_protocol()}"

    def evaluation_protocol(self) -> str:
        """How the final score of a run is measured, in words."""
        return self.exact_protocol or policy_protocol(self.eval_episodes, EVAL_SEED_BASE)

    def protocol(self, objective: str = "train") -> dict:
        """How a run of this task is scored and tuned, for the registry."""
        if not self.episodic:
            tuning = f"mean of {self.objective_key} over all iterations" if self.objective_area else self.objective_key
        elif objective == "eval":
            tuning = (f"the latest periodic evaluation ({self.eval_episodes} episodes, the evaluator's protocol) "
                      f"every tenth of the budget and at its end")
        else:
            tuning = "mean raw return of the last 10 training episodes"
        out = {"evaluation": self.evaluation_protocol(), "eval_episodes": self.eval_episodes, keys.OBJECTIVE: tuning}
        if self.episodic:
            out.update(deterministic=True, eval_seed_base=EVAL_SEED_BASE, eval_env=self.env_id,
                       eval_env_kwargs=self.eval_env_kwargs)
        return out

    def objective(self, metrics: dict, history: list[float]) -> float | None:
        """The objective from this iteration's exact ``metrics`` (``history`` holds the earlier
        values of ``objective_key``); None when the task scores episode returns."""
        if self.objective_key is None:
            return None
        history.append(float(metrics[self.objective_key]))
        return sum(history) / len(history) if self.objective_area else history[-1]

    def stored_policy(self, algo, meta: dict | None = None) -> StoredPolicy:
        """The trained deterministic actor with its frozen normalisation (episodic tasks)."""
        from pgu_rllib.rllib.export import stored_policy

        return stored_policy(algo, env_id=self.env_id, env_kwargs=self.eval_env_kwargs,
                             meta={"task": self.name, **(meta or {})})

    def evaluate(self, algo) -> EvalResult:
        """The evaluator on the current policy of ``algo``: ``eval_episodes`` complete episodes (env seeds
        10000+i), deterministic, normalisation frozen, raw returns. Reads ``algo``; changes nothing in it."""
        return evaluate_policy(self.stored_policy(algo), self.eval_episodes, EVAL_SEED_BASE)

    def score(self, algo, result: dict) -> tuple[float, StoredPolicy | None, int]:
        """The final score of a trained run, the stored policy behind it, and the evaluation's env steps:
        the exact objective (no policy, 0 steps), or the evaluator's mean over ``eval_episodes``."""
        if not self.episodic:
            return float(result[keys.PGU][keys.OBJECTIVE]), None, 0
        policy = self.stored_policy(algo)
        ev = evaluate_policy(policy, self.eval_episodes, EVAL_SEED_BASE)
        policy.meta.update(eval_returns=ev.returns, eval_lengths=ev.lengths, score=ev.mean)
        return ev.mean, policy, ev.env_steps

    def configure(self, config, budget: int | None = None):
        """Apply this task's env, recipe and evaluation settings to a ``PGUConfig``."""
        from pgu_rllib.rllib.callbacks import EpisodeReturns

        budget = int(budget or self.budget)
        config.pgu_task = self  # the callbacks score runs with it (floor, metrics, objective, evaluate)
        config.pgu_budget = budget
        config = config.env_runners(num_env_runners=0).callbacks(EpisodeReturns)
        return self.recipe(config, budget)


# -- models ----------------------------------------------------------------------------------

def _mlp(config, free_log_std=False, orthogonal=False):
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from pgu_rllib.rllib.modules import PGUPPOTorchRLModule

    init = {}
    if orthogonal:  # CleanRL: hidden gain √2, zero biases; heads gain 0.01 (RLlib shares the head init)
        init = dict(fcnet_kernel_initializer="orthogonal_",
                    fcnet_kernel_initializer_kwargs={"gain": math.sqrt(2)},
                    fcnet_bias_initializer="zeros_",
                    head_fcnet_kernel_initializer="orthogonal_",
                    head_fcnet_kernel_initializer_kwargs={"gain": 0.01},
                    head_fcnet_bias_initializer="zeros_")
    return config.rl_module(rl_module_spec=RLModuleSpec(module_class=PGUPPOTorchRLModule),
                            model_config=DefaultModelConfig(
        fcnet_hiddens=[64, 64], fcnet_activation="tanh", vf_share_layers=False,
        free_log_std=free_log_std, **init))


def _logit_module(config, module_class):
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    config.parameterisation = "logit"
    return config.rl_module(rl_module_spec=RLModuleSpec(module_class=module_class))


# -- recipes ---------------------------------------------------------------------------------

def _bandit_recipe(config, budget):
    from pgu_rllib.tasks.bandit import UnitCircleBandit, UnitCircleQModule

    # 8 envs x 32 steps = the 256-episode batch: episodes are i.i.d. single steps, so vectorising
    # changes nothing but the speed
    config = config.environment(UnitCircleBandit, env_config={"n_actions": 8}).env_runners(
        num_envs_per_env_runner=8).training(
        lr=0.02, gamma=0.99, lambda_=1.0,  # every episode terminates after one step: γ is unused
        train_batch_size_per_learner=256, minibatch_size=64,
        num_epochs=2, vf_loss_coeff=0.0, entropy_coeff=0.0, use_kl_loss=False, grad_clip=None)
    return _logit_module(config, UnitCircleQModule)


def _four_rooms_recipe(config, budget):
    from pgu_rllib.tasks.four_rooms import FourRooms
    from pgu_rllib.rllib.modules import TabularLogitModule

    # The step cap ends the episode with return 0 (no bootstrap from E_π[q], which the P form
    # does not calibrate) and λ = 1, so every R̂ is the Monte-Carlo return γ^k·1{goal}.
    config = (config.environment(FourRooms, env_config={"slip": 0.0, "max_steps": 100, "cap_terminal": True})
              .env_runners(num_envs_per_env_runner=8)  # 8 envs x 125 steps = the 1000-step batch
              .training(lr=0.03, gamma=0.99, lambda_=1.0, train_batch_size_per_learner=1000,
                        minibatch_size=250, num_epochs=2, vf_loss_coeff=0.0, entropy_coeff=0.0,
                        use_kl_loss=False, grad_clip=None))
    return _logit_module(config, TabularLogitModule)


def _classic_recipe(config, budget, env_id: str = "CartPole-v1", env_kwargs: dict | None = None):
    """CartPole's recipe; the generic recipe of any discrete-action gymnasium env."""
    config = config.environment(env_id, env_config=dict(env_kwargs or {})).training(
        lr=3e-4, gamma=0.99, lambda_=0.95, train_batch_size_per_learner=512, minibatch_size=64,
        num_epochs=10, vf_loss_coeff=0.5, vf_clip_param=float("inf"), entropy_coeff=0.0,
        grad_clip=0.5, grad_clip_by="global_norm", use_kl_loss=False)
    return _mlp(config)


def _mujoco_recipe(env_id, env_kwargs: dict | None = None):
    """The well-known PPO details (Huang et al. 2022; CleanRL's ppo_continuous_action.py); the generic
    recipe of any continuous-action gymnasium env."""

    def recipe(config, budget):
        from pgu_rllib.tasks.mujoco import RewardScaled

        config = (config.environment(RewardScaled, env_config={"env_id": env_id, "gamma": 0.99,
                                                               "env_kwargs": dict(env_kwargs or {})})
                  # 16 envs x 128 steps = the same 2048-step batch; one batched forward per
                  # vector step (issue 6: 2x the env steps/s, same learning on Hopper)
                  .env_runners(env_to_module_connector=_mean_std_filter, num_envs_per_env_runner=16)
                  .training(lr=3e-4, lr_anneal=True,  # linear annealing to 0 at the budget
                            gamma=0.99, lambda_=0.95, train_batch_size_per_learner=2048,
                            minibatch_size=64, num_epochs=10, vf_loss_coeff=0.5,
                            vf_clip_param=float("inf"),  # RLlib's 10 zeroes critic gradients
                            entropy_coeff=0.0, grad_clip=0.5, grad_clip_by="global_norm",
                            use_kl_loss=False))
        return _mlp(config, free_log_std=True, orthogonal=True)

    return recipe


def _mean_std_filter(env=None, spaces=None, device=None):
    from pgu_rllib.rllib.accel.filters import VectorMeanStdFilter  # RLlib's MeanStdFilter, vectorised

    return VectorMeanStdFilter(clip_by_value=10.0)


# -- task metrics ----------------------------------------------------------------------------

def _bandit_metrics(algo) -> dict:
    from pgu_rllib.tasks.bandit import eval_contexts, greedy_expected_reward

    theta = algo.get_module().theta.detach().cpu().numpy()
    greedy, optimal = greedy_expected_reward(theta, eval_contexts(), algo.config.env_config.get("n_actions", 8))
    return {"greedy_expected_reward": greedy, "optimal_expected_reward": optimal,
            "regret": optimal - greedy, "theta": [float(t) for t in theta]}


def _four_rooms_metrics(algo) -> dict:
    import torch

    from pgu_rllib.tasks.four_rooms import FourRooms

    env = FourRooms({**algo.config.env_config, "slip": 0.0})
    with torch.no_grad():
        greedy = algo.get_module().q(torch.eye(len(env.cells))).argmax(-1).numpy()
    success, excess = env.greedy_success(greedy)
    return {"greedy_success": success, "greedy_excess_steps": excess}


TASKS: dict[str, Task] = {t.name: t for t in [
    Task("bandit", "pgu/UnitCircleBandit-v0", "q_θ(x,a)=⟨φ_θ(x),ψ(a)⟩, 2 params, logit", 20_000,
         eval_episodes=1, floor=0.0, recipe=_bandit_recipe,
         metrics=_bandit_metrics, objective_key="greedy_expected_reward", objective_area=True,
         exact_protocol="area under the exact greedy expected-reward curve (4096 fixed contexts)"),
    Task("four-rooms", "pgu/FourRooms-v0", "tabular logits (104×4), logit", 200_000,
         eval_episodes=1, floor=0.0, recipe=_four_rooms_recipe,
         metrics=_four_rooms_metrics, objective_key="greedy_success",
         exact_protocol="exact greedy success rate from every start cell"),
    Task("cartpole", "CartPole-v1", "64-64 tanh actor and critic", 50_000,
         eval_episodes=10, floor=0.0, recipe=_classic_recipe),
    *[Task(name, env_id, "64-64 tanh, orthogonal init, state-independent log-std; obs/reward normalised",
           budget, eval_episodes=10, floor=floor, recipe=_mujoco_recipe(env_id))
      for name, env_id, budget, floor in [
          ("halfcheetah", "HalfCheetah-v5", 1_000_000, -1e4),
          ("hopper", "Hopper-v5", 1_000_000, -1e3),
          ("walker2d", "Walker2d-v5", 1_000_000, -1e3),
          ("ant", "Ant-v5", 1_000_000, -1e4),
          ("swimmer", "Swimmer-v5", 1_000_000, -1e3),
          ("humanoid", "Humanoid-v5", 1_000_000, -1e3)]],
]}


GYM_PREFIX = "gym:"
PLUGIN_GROUP = "pgu_rllib.tasks"  # entry points of third-party packages: name -> Task (or a function making one)


def _generic_recipe(env_id: str, env_kwargs: dict, config, budget):
    """Any gymnasium env: CartPole's recipe for a discrete action space, the MuJoCo recipe (obs/reward
    normalisation, Gaussian policy) for a continuous one."""
    import gymnasium as gym

    env = gym.make(env_id, **env_kwargs)
    space = env.action_space
    env.close()
    if isinstance(space, gym.spaces.Discrete):
        return _classic_recipe(config, budget, env_id, env_kwargs)
    if isinstance(space, gym.spaces.Box):
        return _mujoco_recipe(env_id, env_kwargs)(config, budget)
    raise ValueError(f"task gym:{env_id}: action space {space} is not allowed; allowed: Discrete or Box")


def gym_task(env_id: str, env_kwargs: dict | None = None) -> Task:
    """Any registered gymnasium env as a task (``--task gym:Acrobot-v1 --env-kwargs '{...}'``): the generic
    recipe for its action space, a 100k-step default budget, scored by the evaluator on
    ``gym.make(env_id, **env_kwargs)``.

    >>> gym_task("Pendulum-v1", {"g": 9.81}).eval_env_kwargs
    {'g': 9.81}
    """
    import functools

    import gymnasium as gym

    if not isinstance(env_kwargs or {}, dict):
        raise ValueError(f"env_kwargs={env_kwargs!r} is not allowed; allowed: a JSON object of gym.make keyword arguments")
    try:
        gym.spec(env_id)
    except Exception as err:  # gymnasium's NameNotFound / VersionNotFound / a malformed id
        raise ValueError(f"unknown gymnasium env id {env_id!r} ({type(err).__name__}); allowed: a registered id "
                         f"such as Acrobot-v1 (`python -c 'import gymnasium; gymnasium.pprint_registry()'`)") from None
    kwargs = dict(env_kwargs or {})
    return Task(f"{GYM_PREFIX}{env_id}", env_id, "64-64 tanh; CartPole's recipe (discrete) or the MuJoCo recipe "
                "(continuous)", 100_000, eval_episodes=10, floor=-1e6,
                recipe=functools.partial(_generic_recipe, env_id, kwargs), eval_env_kwargs=kwargs)


_PLUGINS: dict[str, Task] | None = None


def plugin_tasks() -> dict[str, Task]:
    """Tasks that installed packages declare in the entry-point group ``pgu_rllib.tasks`` (loaded once per
    process, so every Ray worker that asks for one loads them too)."""
    global _PLUGINS
    if _PLUGINS is None:
        import importlib.metadata as md

        found = {}
        for ep in md.entry_points(group=PLUGIN_GROUP):
            obj = ep.load()
            task = obj if isinstance(obj, Task) else obj()
            if not isinstance(task, Task):
                raise ValueError(f"entry point {ep.name!r} ({ep.value}) of group {PLUGIN_GROUP} gives "
                                 f"{type(task).__name__}; allowed: a pgu_rllib.tasks.Task or a function returning one")
            found[task.name] = task
        _PLUGINS = found
    return _PLUGINS


def get_task(name, env_kwargs: dict | None = None) -> Task:
    """Task ``name``: a catalog name, ``gym:<env id>`` (with ``env_kwargs``), or a plugin's; a ``Task``
    passes through. ``ValueError`` lists the known ones."""
    if isinstance(name, Task):
        return name
    if isinstance(name, str) and name.startswith(GYM_PREFIX):
        return gym_task(name.removeprefix(GYM_PREFIX), env_kwargs)
    if env_kwargs:
        raise ValueError(f"env_kwargs are for gym:<env id> tasks; task {name!r} fixes its env")
    if name in TASKS:
        return TASKS[name]
    plugins = plugin_tasks()
    if name in plugins:
        return plugins[name]
    raise ValueError(f"unknown task {name!r}; known: {', '.join([*TASKS, *plugins])}, or gym:<a gymnasium env id>")
