"""Pure computation on market data: reference data, the PriceBook and models."""

from pricing.errors import PricingError, ReferenceDataError, ShapeError, UnknownInstrument
from pricing.instruments import (
    Instrument,
    InstrumentMaster,
    InstrumentType,
    OptionType,
    parse_instrument_csv,
)
from pricing.pricebook import ApplyResult, PriceBook, RejectReason, TickBatch
from pricing.simulator import CALM, MarketModel, ModelParams, Regime

__all__ = [
    "ApplyResult",
    "CALM",
    "Instrument",
    "InstrumentMaster",
    "InstrumentType",
    "MarketModel",
    "ModelParams",
    "OptionType",
    "PriceBook",
    "PricingError",
    "ReferenceDataError",
    "Regime",
    "RejectReason",
    "ShapeError",
    "TickBatch",
    "UnknownInstrument",
    "parse_instrument_csv",
]
