"""Scene classifiers (classical and torch), fusion strategies and safe persistence.

Importing this package registers every model id in :data:`MODELS` and every fusion id in
:data:`FUSION`.
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
from .dense import MLPModel, TorchModel
from .fusion import (
    FUSION,
    FUSION_IDS,
    LATE_METHODS,
    EarlyFusion,
    HybridFusion,
    LateFusion,
    make_fusion,
)
from .lstm import LSTMModel
from .persistence import load_model, save_model

__all__ = [
    "FUSION",
    "FUSION_IDS",
    "LATE_METHODS",
    "MODELS",
    "AudioCNNModel",
    "Capabilities",
    "ClassicalModel",
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
    "make_fusion",
    "make_model",
    "prepare_input",
    "save_model",
]
