"""Tasks: environments (registered with gymnasium on import), their models and exact metrics,
training recipes, and how a run is scored. Imports ``core`` and ``rllib`` only.

``gym.make("pgu/UnitCircleBandit-v0")`` and ``gym.make("pgu/FourRooms-v0")`` work after
``import pgu_rllib.tasks``.

Example::

    >>> from pgu_rllib.tasks import get_task
    >>> get_task("hopper").env_id
    'Hopper-v5'
"""
import gymnasium as gym

from pgu_rllib.tasks.catalog import TASKS, Task, get_task

__all__ = ["TASKS", "Task", "get_task"]

for _id, _entry in (("pgu/UnitCircleBandit-v0", "pgu_rllib.tasks.bandit:UnitCircleBandit"),
                    ("pgu/FourRooms-v0", "pgu_rllib.tasks.four_rooms:FourRooms")):
    if _id not in gym.registry:
        gym.register(id=_id, entry_point=_entry)
