"""舆情回应监测: public-opinion response monitor."""

__version__ = "0.1.0"
