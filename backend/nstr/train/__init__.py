"""Training: a generic loop (a generator of Progress), checkpoints, and a terminal progress bar."""

from nstr.train.loop import Progress, load_checkpoint, save_checkpoint, train
from nstr.train.objective import Objective
from nstr.train.progress_bar import ProgressBar, format_seconds

__all__ = ["train", "Progress", "Objective", "ProgressBar", "format_seconds", "save_checkpoint",
           "load_checkpoint"]
