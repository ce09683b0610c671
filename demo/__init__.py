"""The example customer site of `make run`: a host page on another origin that embeds
the widget, and the widget site it uses. Not product code: only the local and test
settings install this app (production does not)."""
