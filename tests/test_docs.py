"""The docs say what the code does: the README's key table is UpdateRule's fields (keys, allowed
values, defaults), and PGUConfig.training accepts exactly those keys."""
import dataclasses
import pathlib
import re

from pgu_rllib.core.update_rule import KEYS, UpdateRule

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def _table_rows() -> dict[str, list[str]]:
    text = README.read_text().split("## The update-rule keys", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\| `(\w+)` \|(.*)\|$", line)
        if m:
            rows[m.group(1)] = [c.strip() for c in m.group(2).split("|")]
    return rows


def test_readme_key_table_is_the_update_rule():
    rows = _table_rows()
    assert list(rows) == list(KEYS)
    for f in dataclasses.fields(UpdateRule):
        values, default, meaning = rows[f.name]
        allowed = f.metadata["allowed"]
        assert values == (", ".join(f"`{a}`" for a in allowed) if isinstance(allowed, tuple) else allowed)
        want = "–" if f.default is None else f"`{str(f.default).lower() if isinstance(f.default, bool) else f.default}`"
        assert default == want, f.name
        assert meaning == f.metadata["doc"], f.name


def test_pgu_config_training_takes_the_update_rule_keys():
    from pgu_rllib.core.scales import scale_params
    from pgu_rllib.rllib.algorithm import PGUConfig

    values = {k: (p.default or 0.5) / 2 for k, p in scale_params().items()}  # every registered scale's parameters
    values.update({"form": "Q", "scale": "mla", "tau": 2.0, "delta_r": "v", "normalize_delta_r": True,
                   "parameterisation": "soft", "kl_direction": "new_old", "kl_schedule": "fixed",
                   "step": "trust_region", "max_kl": 0.02, "cg_iters": 5, "cg_damping": 0.1, "line_search_steps": 4,
                   "optimism": 0.5, "optimism_adaptive": True, "optimism_lr": 0.1, "ref_kl_coeff": 0.04,
                   "ref_refresh": 3})
    assert set(values) == set(KEYS)
    config = PGUConfig().training(**values)
    assert {k: getattr(config, k) for k in KEYS} == values
    assert dataclasses.asdict(config.update_rule()) == values
