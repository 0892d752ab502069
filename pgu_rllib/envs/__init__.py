"""The paper's environments, registered with gymnasium on import.

``gym.make("pgu/UnitCircleBandit-v0")`` and ``gym.make("pgu/FourRooms-v0")`` work
after ``import pgu_rllib.envs``.
"""
import gymnasium as gym

from pgu_rllib.envs.bandit import UnitCircleBandit
from pgu_rllib.envs.four_rooms import FourRooms
from pgu_rllib.envs.mujoco import RewardScaled

__all__ = ["FourRooms", "RewardScaled", "UnitCircleBandit"]

for _id, _entry in (("pgu/UnitCircleBandit-v0", "pgu_rllib.envs.bandit:UnitCircleBandit"),
                    ("pgu/FourRooms-v0", "pgu_rllib.envs.four_rooms:FourRooms")):
    if _id not in gym.registry:
        gym.register(id=_id, entry_point=_entry)
