"""The app's one error mapping (ui/errors.py): a UserError from any layer becomes one toast without a traceback;
anything else is a bug and propagates unchanged."""
import gradio as gr
import pytest

from synood.config import ConfigError
from synood.data.images import ImageError
from synood.errors import UserError
from synood.models.suites import ModelUnavailableError
from ui.access import AccessError
from ui.errors import shows_user_errors


@pytest.mark.parametrize("error", [ImageError("photo.jpg: not an image"), ConfigError("finetune.lr: -1 is out of range"),
                                   ModelUnavailableError("no CLIP weights"), AccessError("/etc: outside the data roots")])
def test_a_user_error_is_one_toast(error):
    @shows_user_errors
    def handler(value: int, progress=gr.Progress()):
        raise error

    with pytest.raises(gr.Error) as shown:
        handler(1)
    assert shown.value.message == str(error) and shown.value.print_exception is False


def test_a_streaming_handler_shows_what_it_yielded_before_the_error():
    @shows_user_errors
    def handler():
        yield "first"
        raise UserError("then a bad value")

    stream = handler()
    assert next(stream) == "first"
    with pytest.raises(gr.Error, match="then a bad value"):
        next(stream)


def test_a_programming_error_is_not_dressed_as_a_user_error():
    @shows_user_errors
    def handler():
        return {}["missing"]

    with pytest.raises(KeyError):
        handler()


def test_the_wrapper_keeps_what_gradio_reads_from_the_handler():
    def handler(path: str, progress=gr.Progress()):
        """Doc."""
        return path

    wrapped = shows_user_errors(handler)
    assert wrapped.__doc__ == "Doc." and wrapped.__wrapped__ is handler and wrapped("x") == "x"


def test_every_library_error_a_user_causes_is_a_user_error():
    from synood.cli.common import CommandError
    from synood.data.manifest import PairsError
    from synood.data.wordnet import WordNetUnavailableError
    from synood.method.metrics import MetricError
    from synood.pipelines.generation import GenerationError
    from synood.pipelines.training import TrainingError
    from synood.records.checkpoint import CheckpointError
    from synood.records.runs import RunError

    for error in (CommandError, PairsError, WordNetUnavailableError, MetricError, GenerationError, TrainingError,
                  CheckpointError, RunError, ImageError, ConfigError, ModelUnavailableError, AccessError):
        assert issubclass(error, UserError), error
