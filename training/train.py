"""Train a zoo entry: ``python training/train.py --model nmnist-t4 --data ROOT`` (see ``--help``).

A thin script: the training logic is ``stc_zoo.training``, so it also works after ``pip install``
(``python -m stc_zoo.train``); ``torchrun`` runs this script on several devices.
"""

from stc_zoo.training import main

if __name__ == "__main__":
    main()
