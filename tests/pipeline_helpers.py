"""The tiny ``ppgedge run`` config the pipeline tests share, and an observer that records which
stages ran (conftest.py runs it once per session: ``tiny_run``)."""

from __future__ import annotations

from ppgedge.pipeline.run import RunObserver
from ppgedge.train.trainer import TrainingObserver

TINY = """
[run]
out = "run"
device = "cpu"
reference_windows = 0
[data]
subjects = 4
minutes = 2.0
synthetic_motion = 1  # the default path, one subject: 8 would be 12x the data
[teacher]
arch = "resnet_micro"
epochs = 1
[distill]
student = "resnet_micro"
keep_better = false
epochs = 2
[prune]
to = "70%"
steps = 1
finetune_epochs = 0
final_epochs = 1
[qat]
epochs = 1
[export]
formats = "tflite,tflm"
"""


class Recorder(RunObserver):
    def __init__(self) -> None:
        self.ran: list[str] = []
        self.skipped: list[str] = []
        self.first_epochs: dict[str, int] = {}

    def training(self, label: str) -> TrainingObserver:
        firsts = self.first_epochs

        class _Seen(TrainingObserver):
            def start(self, total_epochs: int, batches_per_epoch: int, first_epoch: int) -> None:
                firsts.setdefault(label, first_epoch)

        return _Seen()

    def stage(self, name: str, message: str, seconds: float, skipped: bool) -> None:
        (self.skipped if skipped else self.ran).append(name)
