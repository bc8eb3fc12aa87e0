from .norm import MultiHeadRMSNorm
