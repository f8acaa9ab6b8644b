"""One exception type per domain; each carries one clear line for the user."""


class SynthReidError(Exception):
    """Base of every error the CLI reports as one line (exit code 2)."""


class ConfigError(SynthReidError):
    """A preset or YAML file is missing, malformed or has a bad value."""


class RenderError(SynthReidError):
    """Blender could not render what was asked."""


class DatasetError(SynthReidError):
    """A dataset folder does not have the expected layout."""


class JobError(SynthReidError):
    """The job database or a job is in a state that cannot proceed."""


class EvaluationError(SynthReidError):
    """Features, ids or cameras that cannot be evaluated as asked."""


class ReidError(SynthReidError):
    """A re-id model, checkpoint or training option that cannot be used as asked."""


class RefineError(SynthReidError):
    """A refiner, its checkpoint or its data that cannot be used as asked."""
