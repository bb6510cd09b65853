"""Event-camera datasets in their published formats, read into tonic-style event arrays."""

from .cifar10dvs import CIFAR10DVS, read_aedat2_cifar10dvs
from .dvsgesture import DVSGesture, read_aedat31, read_label_windows
from .events import EVENT_DTYPE, check_events, make_events, synthetic_events
from .files import read_event_file
from .folder import EventFolder
from .nmnist import NMNIST, read_nmnist_file
from .simulated import SimulatedDataset
from .split import stratified_folds, stratified_split, stratified_subset

# Dataset keys -> reader classes (all take root, split, transform, download): the zoo's datasets
# in their published layouts, "folder" for any ROOT/<class>/<recording> tree, "simulated" for the
# recordings a simulation.json describes (stc-zoo simulate).
READERS = {"nmnist": NMNIST, "dvsgesture": DVSGesture, "cifar10dvs": CIFAR10DVS, "folder": EventFolder,
           "simulated": SimulatedDataset}

__all__ = [
    "READERS", "read_event_file", "EventFolder",
    "EVENT_DTYPE", "make_events", "synthetic_events", "check_events", "stratified_split", "stratified_folds",
    "stratified_subset",
    "NMNIST", "read_nmnist_file", "DVSGesture", "read_aedat31", "read_label_windows",
    "CIFAR10DVS", "read_aedat2_cifar10dvs", "SimulatedDataset",
]
