"""Feature extraction: image backbones, MFCC sequences and the feature cache."""
