"""The tensor contract between exporter, calibrator and runtime, declared once.

Everyone who names an ONNX input or output imports it from here (optimum's habit): the
exporter writes these names and dynamic axes, calibration quantizes graphs that have them,
and the runtime feeds them. Changing a name here is a bundle format change.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: its name, element type and symbolic axes."""

    name: str
    dtype: str  # numpy dtype name
    axes: tuple[str, ...]  # symbolic names; "batch" is the dynamic one

    @property
    def dynamic_axes(self) -> dict[int, str]:
        """Axes that stay symbolic in the exported graph (only the batch)."""
        return {i: a for i, a in enumerate(self.axes) if a == "batch"}


@dataclass(frozen=True)
class GraphSpec:
    """Inputs and outputs of one encoder graph."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {t.name: t.dynamic_axes for t in (*self.inputs, *self.outputs)}


PIXEL_VALUES = TensorSpec("pixel_values", "float32", ("batch", "channels", "height", "width"))  # normalised RGB
IMAGES = TensorSpec("images", "uint8", ("batch", "height", "width", "channels"))  # BGR 0..255, resized
IMAGE_EMBEDS = TensorSpec("image_embeds", "float32", ("batch", "embed_dim"))
PATCH_EMBEDS = TensorSpec("patch_embeds", "float32", ("batch", "patches", "patch_dim"))  # L2-normalised per patch
INPUT_IDS = TensorSpec("input_ids", "int64", ("batch", "sequence"))
ATTENTION_MASK = TensorSpec("attention_mask", "int64", ("batch", "sequence"))
TEXT_EMBEDS = TensorSpec("text_embeds", "float32", ("batch", "embed_dim"))

VISION_INPUTS = {"float32": PIXEL_VALUES, "uint8": IMAGES}  # keyed by the bundle's image.input
VISION_INPUT_WORDS = {"uint8": "uint8 images [B, S, S, 3]", "float32": "float32 pixel_values [B, 3, S, S]"}  # errors


def vision_graph(patches: bool, input: str = "float32") -> GraphSpec:
    """The vision graph; bundles exported with patch tokens have a second output, and new bundles take uint8
    frames (``images``) instead of normalised ``pixel_values``."""
    outputs = (IMAGE_EMBEDS, PATCH_EMBEDS) if patches else (IMAGE_EMBEDS,)
    return GraphSpec(inputs=(VISION_INPUTS[input],), outputs=outputs)


def text_graph(needs_attention_mask: bool) -> GraphSpec:
    """The text graph; only some families take an attention mask."""
    inputs = (INPUT_IDS, ATTENTION_MASK) if needs_attention_mask else (INPUT_IDS,)
    return GraphSpec(inputs=inputs, outputs=(TEXT_EMBEDS,))


DEFAULT_OPSET = 17
