"""``--population K``: K runs of one structure trained in one process (issue 26; docs/spec.md §8).

Every tuning trial, selection run and test run stays one Tune trial, with its own config, results, Optuna
trial and registry row, exactly as without ``--population``. What changes is where it trains: a trial joins
a **population host** (a Ray actor holding one ``PopulationTrainer``) of its structure
(``tasks.population_config.structure_key``), and each of its training iterations is one iteration of the
host's whole population. So Tune's schedulers act per member with no change:

* ASHA or Wilcoxon stop a trial: it leaves its host, whose population shrinks; the next trial Tune starts
  joins a host with a free slot (a refill);
* PBT's exploit saves the strong trial's checkpoint (its member's weights, Adam state, observation filter
  and env steps) and restores it into the weak trial's slot: a weight copy between members;
* a selection or test run at the end of its budget is scored by the one evaluator on its member's stored
  policy (``PopulationTrainer.stored_policy``), which ``pgu rollout`` replays.

The ``PopulationBroker`` (a named actor per search, created by the driver) places trials in hosts: a host
of the trial's structure on the trial's node with fewer than K members, else a new one pinned to that node.
A trial reserves 1/K CPU, so K trials fill the CPU their host uses there; hosts reserve none. A host steps
when every member has asked for its next iteration (a barrier); a member whose trial stopped asking for
``STRAGGLER_S`` (its worker died) is dropped, so the others go on.
"""
from __future__ import annotations

import asyncio
import pathlib

import numpy as np

from pgu_rllib.rllib import keys
from pgu_rllib.service._trainables import _ReusableRun

POPULATION = "pgu_population"  # the config key: {"broker": the broker's actor name, "size": K}
STRAGGLER_S = 300.0  # a member silent this long is gone (its worker died): the others go on without it
PLACE_WAIT_S = 10.0  # how long a trial waits for a slot of its structure to free before a new host starts


class PopulationHost:
    """One ``PopulationTrainer`` whose members are Tune trials (a Ray actor; async, so that members wait
    for each other without blocking it)."""

    def __init__(self, spec, budget: int, floor: float):
        import torch

        torch.set_num_threads(1)
        self.spec, self.budget, self.floor = spec, budget, floor
        self.trainer, self.slots, self.next_id = None, [], 0  # slots: member ids in the trainer's order
        self.requests: set[int] = set()
        self.round: asyncio.Future | None = None
        self.schedules: dict[int, list] = {}

    async def join(self, member, seed: int, schedule: list | None = None) -> int:
        """Start a member (a schedule of ``(env steps, member)`` is replayed on the way); returns its id."""
        from pgu_rllib.tasks.population import PopulationTrainer

        if self.trainer is None:
            self.trainer = PopulationTrainer(self.spec, [member], [seed])
        else:
            self.trainer.add(member, seed)
        self.slots.append(self.next_id)
        self.schedules[self.next_id] = list(schedule or [])
        self.next_id += 1
        return self.slots[-1]

    def _replay_schedules(self) -> None:
        """Each member's due schedule entries, in effect before its next iteration (weights and Adam stay)."""
        for k, sid in enumerate(self.slots):
            due = None
            while self.schedules[sid] and self.schedules[sid][0][0] <= self.trainer.member_steps[k]:
                due = self.schedules[sid].pop(0)[1]
            if due is not None:
                self.trainer.pop.set_member(k, due)

    async def leave(self, sid: int) -> None:
        self._leave(sid)

    def _leave(self, sid: int) -> None:
        if sid not in self.slots:
            return
        k = self.slots.index(sid)
        self.slots.pop(k)
        self.requests.discard(sid)
        self.schedules.pop(sid, None)
        if self.trainer.K == 1:
            for envs in self.trainer.envs:
                for env in envs:
                    env.close()
            self.trainer = None
        else:
            self.trainer.remove(k)
        self._maybe_run()

    def _maybe_run(self) -> None:
        """Run the round once every member has asked for it."""
        if self.round is None or self.round.done() or not self.slots or not set(self.slots) <= self.requests:
            return
        round_, self.round, asked = self.round, None, self.requests
        self.requests = set()
        try:
            self._replay_schedules()
            self.trainer.iterate(self.budget)
        except Exception as err:  # every member of the round fails (Tune retries each trial)
            round_.set_exception(err)
            return
        results = {sid: self._result(sid) for sid in asked if sid in self.slots}
        for k, why in sorted(self.trainer.pop.failed.items(), reverse=True):  # non-finite signals: that run fails
            results[self.slots[k]] = FloatingPointError(why)  # alone, as a solo run would; the others go on
            self._leave(self.slots[k])
        round_.set_result(results)

    def _result(self, sid: int) -> dict:
        import ray

        k = self.slots.index(sid)
        returns = self.trainer.returns[k]
        mean = float(np.mean(returns[-10:])) if returns else None
        return {keys.PGU: {keys.OBJECTIVE: mean if mean is not None else float(self.floor),
                           keys.EPISODE_RETURN_MEAN: mean, keys.NODE_ID: ray.get_runtime_context().get_node_id(),
                           "population_size": self.trainer.K},
                keys.ENV_STEPS: int(self.trainer.member_steps[k])}

    async def step(self, sid: int) -> dict:
        """Member ``sid``'s next iteration: waits for the others, then the population takes one iteration."""
        if self.round is None:
            self.round = asyncio.get_running_loop().create_future()
        round_ = self.round
        self.requests.add(sid)
        self._maybe_run()
        try:
            results = await asyncio.wait_for(asyncio.shield(round_), STRAGGLER_S)
        except asyncio.TimeoutError:
            for gone in set(self.slots) - self.requests:
                self._leave(gone)
            results = await round_
        if isinstance(results[sid], Exception):
            raise results[sid]
        return results[sid]

    async def member_state(self, sid: int) -> dict:
        return self.trainer.member_state(self.slots.index(sid))

    async def load_member_state(self, sid: int, state: dict) -> None:
        self.trainer.load_member_state(self.slots.index(sid), state)

    async def score(self, sid: int, path: str | None, meta: dict, episodes: int) -> tuple[float, int, str | None]:
        """Member ``sid`` scored by the one evaluator; its stored policy written to ``path``."""
        from pgu_rllib.core.policy import evaluate_policy

        policy = self.trainer.stored_policy(self.slots.index(sid), meta=meta)
        result = evaluate_policy(policy, episodes=episodes)
        return result.mean, result.env_steps, (str(policy.save(path)) if path else None)


class PopulationBroker:
    """Places trials in hosts by structure (a named Ray actor, one per search)."""

    def __init__(self, size: int, budget: int, floor: float):
        self.size, self.budget, self.floor = size, budget, floor
        self.hosts: dict[str, list[list]] = {}  # structure key -> [[host, members, node id], ...]

    async def place(self, key: str, spec, node_id: str | None = None) -> tuple[object, int]:
        """A host of structure ``key`` on node ``node_id`` (the trial's: the CPU its trials reserve is there)
        with a free slot. When every such host is full, wait up to ``PLACE_WAIT_S`` for a slot: Tune starts a
        trial in place of a stopped one before the stopped one has left (a refill), and the new trial belongs
        in the slot it frees. Then a new host, pinned to that node."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        entries = self.hosts.setdefault(key, [])
        waited = 0.0
        while True:
            mine = [i for i, entry in enumerate(entries) if entry[2] == node_id]
            for i in mine:
                if entries[i][1] < self.size:
                    entries[i][1] += 1
                    return entries[i][0], i
            if not mine or waited >= PLACE_WAIT_S:
                break
            await asyncio.sleep(0.1)
            waited += 0.1
        options = {"num_cpus": 0, "max_concurrency": 1000}
        if node_id is not None:
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id, soft=True)
        host = ray.remote(PopulationHost).options(**options).remote(spec, self.budget, self.floor)
        entries.append([host, 1, node_id])
        return host, len(entries) - 1

    async def release(self, key: str, index: int) -> None:
        self.hosts[key][index][1] -= 1

    async def sizes(self) -> dict[str, list[int]]:
        return {key: [e[1] for e in entries] for key, entries in self.hosts.items()}


def start_broker(name: str, size: int, budget: int, floor: float):
    """The search's broker (killed with ``ray.kill`` when the phase ends; its hosts go with it)."""
    import ray

    return ray.remote(PopulationBroker).options(name=name, num_cpus=0, lifetime=None).remote(size, budget, floor)


class PopulationMember(_ReusableRun):
    """A tuning trial trained as a member of a population host (see the module's docstring)."""

    @staticmethod
    def _run_config(config: dict) -> dict:
        """The run's own configuration (with its ``POPULATION`` entry) in the trial's config."""
        return config

    @classmethod
    def default_resource_request(cls, config):
        from ray.tune.execution.placement_groups import PlacementGroupFactory

        return PlacementGroupFactory([{"CPU": 1.0 / int(cls._run_config(config)[POPULATION]["size"])}])

    def setup(self, config: dict) -> None:
        run = self._run_config(config)
        self._join({k: v for k, v in run.items() if k != POPULATION}, run[POPULATION])

    def _join(self, config: dict, population: dict) -> None:
        import ray

        from pgu_rllib.tasks.population_config import member_schedule, population_member, structure_key

        spec, member, seed = population_member(config)
        self.broker = ray.get_actor(population["broker"])
        self.key = structure_key(spec, member)
        node = ray.get_runtime_context().get_node_id()
        self.host, self.index = ray.get(self.broker.place.remote(self.key, spec, node))
        self.sid = ray.get(self.host.join.remote(member, seed, member_schedule(config)))

    def step(self) -> dict:
        import ray

        return ray.get(self.host.step.remote(self.sid))

    def save_checkpoint(self, checkpoint_dir: str):
        import ray
        import torch

        torch.save(ray.get(self.host.member_state.remote(self.sid)), pathlib.Path(checkpoint_dir) / "member.pt")

    def load_checkpoint(self, checkpoint) -> None:
        import ray
        import torch

        state = torch.load(pathlib.Path(checkpoint) / "member.pt", weights_only=True)
        ray.get(self.host.load_member_state.remote(self.sid, state))

    def cleanup(self) -> None:
        """Leave the population (once): the other members stop waiting for this one."""
        import ray

        if getattr(self, "sid", None) is not None:
            ray.get(self.host.leave.remote(self.sid))
            ray.get(self.broker.release.remote(self.key, self.index))
            self.sid = None


class PopulationEvaluationRun(PopulationMember):
    """A selection or test run trained as a member of a population host; at the budget, scored by the
    one evaluator on its stored policy (``EvaluationRun``'s results, from a population)."""

    @staticmethod
    def _run_config(config: dict) -> dict:
        return config["job"]["config"]

    def setup(self, config: dict) -> None:
        self.job = config["job"]
        super().setup(config)

    def step(self) -> dict:
        import ray

        from pgu_rllib.tasks import get_task

        result = super().step()
        steps = int(result[keys.ENV_STEPS])
        out = {keys.TUNE_OBJECTIVE: result[keys.PGU][keys.OBJECTIVE], keys.ENV_STEPS: steps,
               keys.NODE_ID: result[keys.PGU][keys.NODE_ID], "population_size": result[keys.PGU]["population_size"]}
        if steps >= int(self.job["budget"]):
            meta = {"seed": self.job["seed"], "env_steps": steps, "params": self.job["params"],
                    "config_hash": self.job.get("config_hash"), "population": True}
            episodes = get_task(self.job["task"]).eval_episodes
            score, eval_steps, path = ray.get(self.host.score.remote(self.sid, self.job.get("policy_path"), meta,
                                                                     episodes))
            out.update({"score": score, "done": True, keys.EVAL_ENV_STEPS: eval_steps})
            if path:
                out["policy_path"] = path
            self.cleanup()  # the run is over: its slot is free now
        return out


# -- the search's side (``service.search``) -------------------------------------------------------------

def prepare_population(run) -> None:
    """``--population K``: check that every run the space can sample can train in a population (one line naming
    the first key that cannot), then mark the base config with the population (``POPULATION``)."""
    from pgu_rllib.core.errors import InvalidArgument
    from pgu_rllib.tasks.population_config import NotAPopulationRun, population_member

    for key, allowed, ok in (("seeds_per_trial", "1 with --population", run.seeds_per_trial == 1),
                             ("gpus_per_trial", "0 with --population (a population runs on CPU)", not run.gpus_per_trial),
                             ("objective", "train with --population", run.objective == "train")):
        if not ok:
            raise InvalidArgument(key, getattr(run, key), allowed)
    try:
        population_member(run.base_config)
        for key, values in (run.space.values_of(("step", "use_kl_loss", "ref_kl_coeff")).items() if run.space else ()):
            for value in values:
                population_member({**run.base_config, key: value})
    except NotAPopulationRun as err:
        raise InvalidArgument("population", run.population, f"a task and space every run of which can train in a "
                                                            f"population; {err}") from None
    run.base_config[POPULATION] = {"broker": f"pgu-population-{run.name}", "size": run.population}


def start_population(run):
    """The search's population broker, or None without ``--population``."""
    if run.population <= 1:
        return None
    return start_broker(run.base_config[POPULATION]["broker"], run.population, run.budget, run.task.floor)


def stop_population(broker) -> None:
    """Kill the broker; its hosts go with it."""
    if broker is not None:
        import ray

        ray.kill(broker)
