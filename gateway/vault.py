"""Camera credentials, sealed before they reach Redis: the implementation is `adapters.vault`
(shared with edge adapters, which keep their own key files); these names stay importable from
here for the gateway's modules and tests.
"""

from __future__ import annotations

from adapters.vault import KEY_BYTES, CredentialVault, VaultError, create_key_file, load_key

__all__ = ["KEY_BYTES", "CredentialVault", "VaultError", "create_key_file", "load_key"]
