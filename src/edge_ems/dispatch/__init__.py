"""Guarded, audited dispatch: the only way anything is written to a device."""

from .audit import AuditRecord, Outcome, Reason
from .budget import EepromBudget, RateLimiter
from .dispatcher import AuditSink, DispatchDevice, Dispatcher
from .policy import AssetLimits, ControlPolicy
from .split import split_site_power

__all__ = [
    "AssetLimits",
    "AuditRecord",
    "AuditSink",
    "ControlPolicy",
    "DispatchDevice",
    "Dispatcher",
    "EepromBudget",
    "Outcome",
    "RateLimiter",
    "Reason",
    "split_site_power",
]
