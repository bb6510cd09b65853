"""Training: ``stc-zoo train`` (also ``python -m stc_zoo.train`` and ``training/train.py``), one concept per module.

* ``config``: ``TrainConfig`` (the recipe), ``--set``/``--config`` overrides, ``--init``'s config;
* ``data``: the compressed training and validation data, the hold-out, cache-side augmentation;
* ``state``: the run folder's files (state, best, final, run.json, metrics), atomic writes, the run lock;
* ``loop``: one epoch of training, validation, the per-step loss, the EMA;
* ``distributed``: torchrun / DistributedDataParallel set-up and reductions;
* ``run``: one run top to bottom (``train_run``): resolve (new or resumed), data, build, restore, fit, export;
* ``export``: the Hub-ready folder of a finished run, with the card stating how its result was measured;
* ``crossval``: ``--folds K`` (the protocol) and the statistics that compare recipes;
* ``cli``: the options and ``main``.

What a run does:

* Any StcConfig field is overridable (``--set T=8 --set ratio=2`` or ``--config file.json|yaml``
  holding ``{"model": {...}, "train": {...}}``); training hyper-parameters are ``TrainConfig``.
* A fixed, seeded, per-class validation split is held out of the training data and reported
  every epoch; ``metrics.jsonl`` logs each epoch; ``best.safetensors`` keeps the best weights.
* ``last.safetensors`` holds the whole training state (model, optimiser, scheduler, RNGs, epoch,
  the metrics so far), written atomically (temp file + rename) after every epoch; ``--resume``
  continues from it exactly, also after a SIGKILL at any point: it rewrites ``metrics.jsonl``
  from the state, drops stray temp files, starts from epoch 1 if no epoch had finished, and
  starts the run if it was killed before its folder was written. One training at a time writes a
  run folder (a lock the OS releases however the process ends).
* Runs on CPU, one GPU (AMP in bf16) or several through ``torchrun`` (DistributedDataParallel).
* ``--export DIR`` writes a Hub-ready folder through ``StcSNN.save_pretrained`` (model.safetensors,
  config.json, SHA256SUMS and the README.md card with the validation result).
* ``--init`` starts from trained weights; a hold-out those weights were trained on is refused.
* ``--folds K`` cross-validates the recipe instead (``crossval``): K fold runs with a fixed
  schedule, each measured on its last epoch, then with ``--export`` a run on every recording whose
  card states the cross-validated estimate.
* Mistakes (a missing dataset, a bad ``--set`` value, no network for ``--download``) are one line
  on stderr and exit status 2.
"""

from .cli import main, parse_args
from .config import TrainConfig, TrainError, resolve_configs
from .run import command_line, export_finished, train_run
from .state import BEST, FINAL, LOCK, RUN, STATE, read_meta

__all__ = ["BEST", "FINAL", "LOCK", "RUN", "STATE", "TrainConfig", "TrainError", "command_line", "export_finished",
           "main", "parse_args", "read_meta", "resolve_configs", "train_run"]
