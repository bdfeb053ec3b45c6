"""Agent enrolment: one-time tokens, and the Enroll service (first certificate, renewal).

See :mod:`._tokens` for how tokens are kept and used up, and :mod:`._servicer`
for the service and the collector's enrolment port.
"""

from otsentry.collector.enroll._servicer import (
    MAX_CSR_BYTES, EnrollServicer, add_enroll_service, enroll_port_of,
)
from otsentry.collector.enroll._tokens import Token, TokenError, TokenStore

__all__ = ["EnrollServicer", "add_enroll_service", "enroll_port_of", "MAX_CSR_BYTES", "Token",
           "TokenError", "TokenStore"]
