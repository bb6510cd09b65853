"""Everything between a checkpoint folder and the Hugging Face Hub, one concept per module.

* ``files``: what a checkpoint folder holds (the file names, defined once).
* ``checksums``: its ``SHA256SUMS`` manifest, written on save and verified before loading.
* ``checkpoint``: reading and writing the config and weights strictly (no missing, extra or
  mis-shaped tensor; nothing pickled).
* ``card``: the model card (Hub metadata, the stated result and the split it was measured on).
* ``resolve``: a folder, a zoo name or a Hub repo id -> a verified local folder, through
  ``huggingface_hub`` (its cache, offline mode, mirrors, revisions, timeouts), with the bundled
  fallback for zoo entries.
* ``holdout``: the hold-out a card states, drawn again; its accuracy recomputed from the recordings.
* ``publish``: validate a folder for the Hub and upload it (``hub/publish.py`` is its script).

``StcSNN.save_pretrained``/``push_to_hub`` (huggingface_hub's mixin) and ``hub/publish.py`` all
write and check folders through ``checkpoint``, ``checksums`` and ``card``.
"""
