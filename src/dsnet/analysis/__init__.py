"""Analysis tools: size and compute counts, theoretical and effective receptive fields, atrous padding."""

from .atrous import TABLE1_SCHEDULES, PaddingRow, atrous_padding, padding_share, parse_schedule, schedule_padding
from .complexity import count_parameters, profile
from .erf import ERFResult, effective_receptive_field, high_contribution_ratios
from .receptive_field import RFRow, receptive_fields

__all__ = [
    "TABLE1_SCHEDULES",
    "ERFResult",
    "PaddingRow",
    "RFRow",
    "atrous_padding",
    "count_parameters",
    "effective_receptive_field",
    "high_contribution_ratios",
    "padding_share",
    "parse_schedule",
    "profile",
    "receptive_fields",
    "schedule_padding",
]
