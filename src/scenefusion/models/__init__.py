"""Scene classifiers (classical and torch), fusion strategies and safe persistence.

Importing this package registers every model id in :data:`MODELS` and every late combiner in
:data:`COMBINERS`; :data:`FUSION` lists ``early`` and a late and a hybrid id per combiner.
A late or hybrid model takes its combiner resolved: ``resolve_combiner(id, fusion.params[id])``.
"""

from .base import (
    MODELS,
    Capabilities,
    accepts_sequences,
    available_models,
    capabilities,
    fit_model,
    make_model,
    prepare_input,
)
from .classical import (
    ClassicalModel,
    HGBModel,
    KNNModel,
    LogRegModel,
    RandomForestModel,
    SVMModel,
)
from .cnn import AudioCNNModel
from .combiners import (
    COMBINERS,
    Combiner,
    make_combiner,
    register_combiner,
    resolve_combiner,
)
from .dense import MLPModel, TorchModel
from .early import EarlyFusion
from .fusion import HybridFusion, LateFusion
from .fusion_registry import FUSION, make_fusion
from .lstm import LSTMModel
from .persistence import load_model, save_model

__all__ = [
    "COMBINERS",
    "FUSION",
    "MODELS",
    "AudioCNNModel",
    "Capabilities",
    "ClassicalModel",
    "Combiner",
    "EarlyFusion",
    "HGBModel",
    "HybridFusion",
    "KNNModel",
    "LSTMModel",
    "LateFusion",
    "LogRegModel",
    "MLPModel",
    "RandomForestModel",
    "SVMModel",
    "TorchModel",
    "accepts_sequences",
    "available_models",
    "capabilities",
    "fit_model",
    "load_model",
    "make_combiner",
    "make_fusion",
    "make_model",
    "prepare_input",
    "register_combiner",
    "resolve_combiner",
    "save_model",
]
