"""scenefusion: recognise the scene from what a machine sees and hears."""

__version__ = "0.1.0"
