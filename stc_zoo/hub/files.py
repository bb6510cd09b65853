"""The files of a checkpoint folder (and of a zoo repo on the Hub): defined here, once."""

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MANIFEST = "SHA256SUMS"
CARD_NAME = "README.md"
SEEN_NAME = "trained_on.json"  # which recordings and source images the weights saw (stc_zoo/hub/seen.py)
# What SHA256SUMS covers: the files that decide what the model computes.
CHECKSUMMED = (CONFIG_NAME, WEIGHTS_NAME)
# What a checkpoint repo holds; nothing else is downloaded or uploaded.
REPO_FILES = (CONFIG_NAME, WEIGHTS_NAME, MANIFEST, CARD_NAME, SEEN_NAME)
# Those a checkpoint may lack (written before the file existed, or saved by hand).
OPTIONAL_FILES = (SEEN_NAME,)
