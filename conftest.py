"""Root conftest: litellm must not try to download its cost map (no network), for doctests too."""

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
