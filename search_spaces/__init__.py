"""The shipped search spaces, installed as ``pgu_rllib.search_spaces`` (package data of the wheel;
``pgu_rllib.service.spaces`` reads them with ``importlib.resources``)."""
