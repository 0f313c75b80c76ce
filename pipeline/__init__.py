"""storyboard: a declarative, make-style build tool for AI video."""

__version__ = "0.1.0"
