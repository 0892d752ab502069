"""Domain errors of the library. Each is one line; the CLI words them with its own flags.

``PGUError`` subclasses ``ValueError``, so code that catches ``ValueError`` keeps working.

Example::

    >>> err = InvalidArgument("trials", 0, "an integer in [1, 1000]")
    >>> str(err)
    'trials=0 is not allowed; allowed: an integer in [1, 1000]'
    >>> err.worded(flag="--trials")
    '--trials=0 is not allowed; allowed: an integer in [1, 1000]'
"""
from __future__ import annotations


class PGUError(ValueError):
    """Bad input or state, one line. ``worded(**flags)`` words it for a command line."""

    def worded(self, **flags) -> str:
        return str(self)


class InvalidArgument(PGUError):
    """An argument outside its domain: names the argument, the value and what is allowed."""

    def __init__(self, param: str, value, allowed: str):
        self.param, self.value, self.allowed = param, value, allowed
        super().__init__(f"{param}={value!r} is not allowed; allowed: {allowed}")

    def worded(self, flag: str | None = None, **_) -> str:
        return f"{flag or self.param}={self.value!r} is not allowed; allowed: {self.allowed}"


class SearchExists(PGUError):
    def __init__(self, name: str):
        self.name = name
        super().__init__(f"search {name!r} already exists; resume it (resume=True) or choose another name")

    def worded(self, **_) -> str:
        return f"search {self.name!r} already exists; pass --resume to continue it or choose a new --name"


class NothingToResume(PGUError):
    def __init__(self, name: str, where: str):
        self.name = name
        super().__init__(f"nothing to resume: no search {name!r} in {where}")


class SearchChanged(PGUError):
    """``--resume`` with settings that differ from the stored search's: names each difference."""

    def __init__(self, name: str, differences: list[str]):
        self.name, self.differences = name, differences
        super().__init__(f"search {name!r} was started with other settings: {'; '.join(differences)}; resume it "
                         f"with the stored settings or start a new search under another name")


class SearchLocked(PGUError):
    """Another live process holds the search's lease (one writer per search)."""

    def __init__(self, name: str, holder: str):
        self.name, self.holder = name, holder
        super().__init__(f"search {name!r} is being written by {holder}; wait for it to finish or stop it first")


class NothingStored(PGUError):
    """A reader found no best row for the task (a wrong ``--registry`` is the usual cause); nothing is written."""

    def __init__(self, task: str, where: str):
        self.task = task
        super().__init__(f"no best configuration for task {task!r} in {where}; nothing written (check --registry, "
                         f"or run `pgu search --task {task}` first)")


class SearchFailed(PGUError):
    """Every trial (or a selection/test run) of a search failed: names the first error."""


class MissingResources(PGUError):
    """The cluster lacks what a trial asks for (e.g. a GPU), and none was added in time."""

    def __init__(self, param: str, value, have: dict, waited_s: float, asks: dict | None = None):
        self.param, self.value = param, value
        wanted = f" ({', '.join(f'{v:g} {k}' for k, v in asks.items() if v)} per run)" if asks else ""
        waited = f"; waited {waited_s:.0f} s for the autoscaler" if waited_s else "; nothing was written"
        super().__init__(f"{param}={value!r} asks for more than the cluster has{wanted}: it has "
                         f"{', '.join(f'{v:g} {k}' for k, v in have.items())}{waited}")

    def worded(self, flag: str | None = None, **_) -> str:
        return str(self).replace(f"{self.param}=", f"{flag or self.param}=", 1)


class SearchInterrupted(Exception):
    """A search stopped part-way (Ctrl-C, SIGTERM): what finished is stored; resume continues it."""

    def __init__(self, name: str, phase: str):
        self.name, self.phase = name, phase
        super().__init__(f"search {name!r} interrupted during {phase}")
