class CryptoError(Exception):
    """Any failure to decrypt, open or verify. Deliberately says nothing of which check failed."""

    def __init__(self, message: str = "cannot open or verify this data") -> None:
        super().__init__(message)
