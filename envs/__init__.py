"""marlmod's misbehaviour environments, registered in PettingZoo's parallel registry on import.

Each environment is one module whose docstring is its specification; its id carries a version that
is bumped whenever dynamics or rewards change, so old results stay reproducible. An env's
NumPy-batched twin sits beside it (``gathering_batched.py``) and is named in its
``metadata["marlmod"]["batched"]``; twins import marlmod and stable-baselines3, so nothing here
imports them and ``import envs`` stays free of torch (tests/test_twin_declaration.py).
"""

import pettingzoo

GATHERING_ID = "marlmod/gathering-v0"
SIGNALLING_ID = "marlmod/signalling-v0"
COMMONS_HARVEST_ID = "marlmod/commons_harvest-v0"  # needs dmlab2d (marlmod[lab2d])
CLEAN_UP_ID = "marlmod/clean_up-v0"  # needs dmlab2d (marlmod[lab2d])

_REGISTERED = {
    GATHERING_ID: "envs.gathering:GatheringEnv",
    SIGNALLING_ID: "envs.signalling:SignallingEnv",
    COMMONS_HARVEST_ID: "envs.commons_harvest:CommonsHarvestEnv",
    CLEAN_UP_ID: "envs.clean_up:CleanUpEnv",
}

for _env_id, _entry_point in _REGISTERED.items():
    if _env_id not in pettingzoo.parallel_registry:
        pettingzoo.register("parallel", _env_id, entry_point=_entry_point)
