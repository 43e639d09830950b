"""Signal types by name. Adding a type means adding its module and one line here."""

from __future__ import annotations

from firebreak.errors import UnknownSignalType
from firebreak.signals.audio import AudioSignal
from firebreak.signals.base import SignalType
from firebreak.signals.md5 import Md5Signal
from firebreak.signals.pdq import PdqSignal
from firebreak.signals.sha256 import Sha256Signal
from firebreak.signals.thumb import ThumbSignal
from firebreak.signals.video import VideoSignal

SIGNAL_TYPES: dict[str, type[SignalType]] = {
    t.name: t for t in (PdqSignal, VideoSignal, Md5Signal, Sha256Signal, ThumbSignal, AudioSignal)
}
_BY_EXCHANGE_NAME: dict[str, type[SignalType]] = {t.exchange_name: t for t in SIGNAL_TYPES.values()}


def signal_type(name: str) -> type[SignalType]:
    try:
        return SIGNAL_TYPES[name]
    except KeyError:
        raise UnknownSignalType(name) from None


def signal_type_for_exchange_name(name: str) -> type[SignalType] | None:
    """Our type for a hash list's type name; None for types we keep but cannot match."""
    return _BY_EXCHANGE_NAME.get(name) or SIGNAL_TYPES.get(name)
