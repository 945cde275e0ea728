"""One base error for everything the user can fix; the CLI turns each into one line and exit 2."""

from __future__ import annotations


class NNVizError(Exception):
    """Bad input or an environment problem the user can fix. The message is one line:
    what is wrong, and what to do about it."""


class ConfigError(NNVizError):
    """An option or setting has a value that cannot be used."""


class DataError(NNVizError):
    """The sample set cannot be read or does not have the CIFAR-10 layout."""


class ModelError(NNVizError):
    """The model spec, its weights or its behaviour on 32×32 input are unusable."""


class CheckpointError(ModelError):
    """A checkpoint file is missing, corrupt, unsafe to unpickle, or does not fit the model."""


class CaptureError(NNVizError):
    """The model failed while the capture pass ran it."""


class OutputError(NNVizError):
    """The report cannot be written where it was asked to go."""


class SchemaError(NNVizError):
    """An archived report.json has a schema this version cannot read."""


class CompareError(NNVizError):
    """The two sides of a comparison do not describe the same model on the same sample."""
