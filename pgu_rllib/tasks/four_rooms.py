"""``pgu/FourRooms-v0``: the four-rooms gridworld of Sutton, Precup & Singh (1999).

The classic 13×13 map (walls included; 104 free cells, four rooms joined by four
hallways). Observations are one-hot over the free cells; actions are up, down,
left, right. With probability ``slip`` (default 0) the action is replaced by a
uniformly random one. The start cell is drawn uniformly from the free cells
other than the goal; the goal is fixed at ``GOAL = (11, 11)``, the far corner of
the bottom-right room. Reward 1 on reaching the goal (terminated), 0 otherwise;
episodes are truncated after ``max_steps`` (default 100). With ``cap_terminal=True`` the
step cap *terminates* the episode instead (return 0, nothing bootstrapped past it): the
finite-horizon reading of the task, in which every return is ``γ^k·1{goal reached}``.

Example::

    >>> env = FourRooms()
    >>> obs, _ = env.reset(seed=0)
    >>> obs.shape, float(obs.sum())
    ((104,), 1.0)
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np

LAYOUT = """\
wwwwwwwwwwwww
w     w     w
w     w     w
w           w
w     w     w
w     w     w
ww wwww     w
w     www www
w     w     w
w     w     w
w           w
w     w     w
wwwwwwwwwwwww"""

GOAL = (11, 11)  # the bottom-right room's far corner (row, col)
MOVES = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)])  # up, down, left, right


class FourRooms(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, config: dict | None = None):
        config = dict(config or {})
        self.slip = float(config.get("slip", 0.0))
        self.max_steps = int(config.get("max_steps", 100))
        self.cap_terminal = bool(config.get("cap_terminal", False))
        if not 0.0 <= self.slip <= 1.0:
            raise ValueError(f"slip={self.slip} is out of range; allowed [0, 1]")
        if self.max_steps < 1:
            raise ValueError(f"max_steps={self.max_steps} is out of range; allowed an integer >= 1")
        grid = np.array([list(row) for row in LAYOUT.splitlines()])
        self.free = grid != "w"
        self.cells = [tuple(c) for c in np.argwhere(self.free)]
        self.index = {c: i for i, c in enumerate(self.cells)}
        self.goal = tuple(config.get("goal", GOAL))
        if self.goal not in self.index:
            raise ValueError(f"goal={self.goal} is not a free cell")
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(len(self.cells),), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(4)
        self._pos, self._t = self.cells[0], 0

    def _obs(self) -> np.ndarray:
        obs = np.zeros(len(self.cells), dtype=np.float32)
        obs[self.index[self._pos]] = 1.0
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        starts = [c for c in self.cells if c != self.goal]
        self._pos = starts[self.np_random.integers(len(starts))]
        self._t = 0
        return self._obs(), {"cell": self._pos}

    def next_cell(self, cell: tuple, action: int) -> tuple:
        """Where ``action`` leads from ``cell`` without slip (a wall leaves it in place)."""
        nxt = (cell[0] + MOVES[action][0], cell[1] + MOVES[action][1])
        return nxt if self.free[nxt] else cell

    def step(self, action):
        a = int(action)
        if self.slip > 0 and self.np_random.random() < self.slip:
            a = int(self.np_random.integers(4))
        self._pos = self.next_cell(self._pos, a)
        self._t += 1
        at_goal = self._pos == self.goal
        capped = (not at_goal) and self._t >= self.max_steps
        terminated = at_goal or (capped and self.cap_terminal)
        truncated = capped and not self.cap_terminal
        return self._obs(), float(at_goal), terminated, truncated, {"cell": self._pos}

    def greedy_success(self, actions) -> tuple[float, float | None]:
        """Roll a deterministic policy (``actions[i]`` in cell ``cells[i]``) out from every start
        cell without slip: (the fraction that reach the goal within ``max_steps``, their mean
        number of steps beyond the shortest path, or None if none does)."""
        dist = self.shortest_path_lengths()
        reached, excess = 0, []
        for start in self.cells:
            if start == self.goal:
                continue
            pos, steps = start, 0
            while pos != self.goal and steps < self.max_steps:
                pos = self.next_cell(pos, int(actions[self.index[pos]]))
                steps += 1
            if pos == self.goal:
                reached += 1
                excess.append(steps - dist[start])
        return reached / (len(self.cells) - 1), (sum(excess) / len(excess) if excess else None)

    def shortest_path_lengths(self) -> dict:
        """BFS distance from every free cell to the goal (for tests and evaluation)."""
        dist, frontier = {self.goal: 0}, [self.goal]
        while frontier:
            nxt = []
            for (r, c) in frontier:
                for dr, dc in MOVES:
                    n = (r + dr, c + dc)
                    if self.free[n] and n not in dist:
                        dist[n] = dist[(r, c)] + 1
                        nxt.append(n)
            frontier = nxt
        return dist
