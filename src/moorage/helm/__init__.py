"""The only code that runs the helm binary, plus a reader of Helm release storage."""
