"""Scene classifiers (classical and torch), fusion strategies and safe persistence.

Importing this package registers every model id in :data:`MODEL_REGISTRY`.
"""

from scenefusion.models.base import (
    MODEL_REGISTRY,
    accepts_sequences,
    available_models,
    make_model,
    pool_sequence,
    prepare_input,
)
from scenefusion.models.classical import (
    ClassicalClassifier,
    HGBClassifier,
    KNNClassifier,
    LogRegClassifier,
    RandomForestModel,
    SVMClassifier,
)
from scenefusion.models.dense import MLPClassifier, TorchClassifier
from scenefusion.models.fusion import (
    FUSION_IDS,
    EarlyFusion,
    HybridFusion,
    LateFusion,
    make_fusion,
)
from scenefusion.models.lstm import LSTMClassifier
from scenefusion.models.persistence import load_model, save_model

__all__ = [
    "FUSION_IDS",
    "MODEL_REGISTRY",
    "ClassicalClassifier",
    "EarlyFusion",
    "HGBClassifier",
    "HybridFusion",
    "KNNClassifier",
    "LSTMClassifier",
    "LateFusion",
    "LogRegClassifier",
    "MLPClassifier",
    "RandomForestModel",
    "SVMClassifier",
    "TorchClassifier",
    "accepts_sequences",
    "available_models",
    "load_model",
    "make_fusion",
    "make_model",
    "pool_sequence",
    "prepare_input",
    "save_model",
]
