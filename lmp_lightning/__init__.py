"""lmp-lightning: loss max-pooling and locally adaptive losses for imbalanced segmentation."""

__version__ = "0.1.0"
