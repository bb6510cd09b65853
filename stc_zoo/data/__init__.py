"""Event-camera datasets in their published formats, read into tonic-style event arrays."""

from .cifar10dvs import CIFAR10DVS, read_aedat2_cifar10dvs
from .dvsgesture import DVSGesture, read_aedat31, read_label_windows
from .events import EVENT_DTYPE, check_events, make_events, synthetic_events
from .files import read_event_file
from .folder import EventFolder
from .nmnist import NMNIST, read_nmnist_file
from .split import stratified_folds, stratified_split

# Dataset keys -> reader classes (all take root, split, transform, download): the zoo's datasets
# in their published layouts, and "folder" for any ROOT/<class>/<recording> tree.
READERS = {"nmnist": NMNIST, "dvsgesture": DVSGesture, "cifar10dvs": CIFAR10DVS, "folder": EventFolder}

__all__ = [
    "READERS", "read_event_file", "EventFolder",
    "EVENT_DTYPE", "make_events", "synthetic_events", "check_events", "stratified_split", "stratified_folds",
    "NMNIST", "read_nmnist_file", "DVSGesture", "read_aedat31", "read_label_windows",
    "CIFAR10DVS", "read_aedat2_cifar10dvs",
]
