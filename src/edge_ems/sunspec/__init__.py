"""SunSpec devices: discovery, model decoding from SunSpec's own definitions, control.

:class:`SunSpecDevice` is the entry point; :func:`survey` lists every device of a chain
(an inverter and its meters) for a setup flow to offer. The pieces they are built from are
public for tools and simulators: :func:`discover` walks a register map, :func:`model_definition`
loads a model from pysunspec2's JSON, :func:`model_layout` places it at an address and
:func:`decode_model` decodes its registers.
"""

from .codec import GroupValues, decode_model
from .device import SunSpecDevice
from .discovery import BASE_ADDRESSES, Chain, FoundModel, discover, identity_of
from .layout import ModelLayout, model_layout
from .models import SUPPORTED_MODELS, ModelDef, model_definition
from .survey import ChainDevice, survey
from .transport import LinkUnit, Registers

__all__ = [
    "BASE_ADDRESSES",
    "SUPPORTED_MODELS",
    "Chain",
    "ChainDevice",
    "FoundModel",
    "GroupValues",
    "LinkUnit",
    "ModelDef",
    "ModelLayout",
    "Registers",
    "SunSpecDevice",
    "decode_model",
    "discover",
    "identity_of",
    "model_definition",
    "model_layout",
    "survey",
]
