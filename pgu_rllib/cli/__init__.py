"""The ``pgu`` command line.

``pgu presets`` / ``pgu tasks`` list what exists; ``pgu train`` runs one training; ``pgu search`` searches a
space, ``pgu best`` / ``export`` / ``report`` / ``dashboard`` read what it stored. Bad input prints one line
``pgu: error: ...`` and exits 2.

Modules: ``args`` (argument types, the one-line parser), ``parser`` (the sub-commands and their flags),
``commands`` (what each sub-command does), and ``main`` here.

Example::

    $ pgu train --task cartpole --preset ppo --env-steps 5000 --json
"""
from __future__ import annotations

import os

from pgu_rllib.cli.args import FLAGS, parse_sets
from pgu_rllib.cli.commands import full_paths
from pgu_rllib.cli.parser import build_parser
from pgu_rllib.core.errors import PGUError

__all__ = ["build_parser", "main", "parse_sets"]


def main(argv: list[str] | None = None) -> int:
    from pgu_rllib.rllib.ray_session import quiet_logs

    quiet_logs()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("search", "evaluate", "registry"):
        # the registry, Tune's state and the logs: the user and the group (a team shares results), nobody else;
        # secrets (the cluster's token, a password in a URL) never reach them. Reports and exports are made to be
        # shared and keep the user's umask.
        os.umask(os.umask(0o027) | 0o027)
    if args.command in ("search", "evaluate", "train"):
        import signal

        # SIGTERM (a scheduler, `kill`, `ray job stop`) stops a run as Ctrl-C does: it is turned into a SIGINT to
        # this process, so whichever SIGINT handler is in place (Tune's, during a fit) runs; Tune saves its
        # state, the search is marked interrupted, exit 130 with the resume hint
        signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    try:
        return args.fn(args)
    except PGUError as err:
        param = getattr(err, "param", None)
        flag = f"--{param.replace('_', '-')}" if param else None
        if flag and flag not in FLAGS:  # a config key of --set, not a flag
            flag = None
        parser.exit(2, f"pgu: error: {err.worded(flag=flag).splitlines()[0]}\n")
    except ValueError as err:
        # One line: RLlib appends a hint about `_validate_config` on a second line.
        parser.exit(2, f"pgu: error: {str(err).splitlines()[0]}\n")
    except KeyboardInterrupt:
        parser.exit(130, "pgu: interrupted\n")
    except OSError as err:  # the environment, not the input: a full disk, a read-only or vanished path
        where = f"{err.filename}: " if getattr(err, "filename", None) else full_paths(args, err)
        parser.exit(1, f"pgu: error: {where}{err.strerror or str(err).splitlines()[0]}\n")
