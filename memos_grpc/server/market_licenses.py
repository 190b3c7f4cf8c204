"""MarketplaceService methods for licenses and Subscribe: AcquireLicense, GetLicense, ListLicenses,
RevokeLicense and the event stream, mixed into the one ``MarketplaceServicer``.
"""

from __future__ import annotations


class LicenseMethods:
    """The license and Subscribe half of MarketplaceService; the listings half is ``ListingMethods``."""
