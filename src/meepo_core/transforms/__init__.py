"""Transforms: the third kind of plugin, between the source and the sinks. One event in,
zero or more out, never reordered, applied inside the delivery engine (the pipeline's
``transforms``, then each sink's own) to streamed and snapshot events alike.

The built-in types live in one module each (``filter``, ``mask``, ``hash``,
``drop_columns``/``keep_columns``, ``rename``, ``route``, ``python``) and are registered
through ``meepo_register_transforms`` like any plugin's. Runs of consecutive built-in
(and :class:`ImageTransform`) transforms are compiled per table into one generated
function over a batch (:mod:`~meepo_core.transforms.compiled`).
"""

from .base import (
    EventFunction,
    ImageTransform,
    RowEditor,
    Transform,
    TransformResult,
    derive,
    with_images,
)
from .building import build_chain, split_sink_options
from .chain import PipelineTransforms, Step, TransformChain, TransformError

__all__ = [
    "EventFunction",
    "ImageTransform",
    "PipelineTransforms",
    "RowEditor",
    "Step",
    "Transform",
    "TransformChain",
    "TransformError",
    "TransformResult",
    "build_chain",
    "derive",
    "split_sink_options",
    "with_images",
]
