"""API keys: their format, verification, management, and the rate limits charged to them."""

from jamey_engine.keys.manager import SCOPES, STATUSES, CreatedKey, KeyInfo, KeyManager
from jamey_engine.keys.verify import VerifiedKey

__all__ = ["SCOPES", "STATUSES", "CreatedKey", "KeyInfo", "KeyManager", "VerifiedKey"]
