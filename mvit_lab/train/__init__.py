"""Training and evaluation."""

from mvit_lab.train.loop import TrainResult, evaluate, train

__all__ = ["TrainResult", "evaluate", "train"]
