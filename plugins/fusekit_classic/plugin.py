"""Registers the classic methods through fusekit's plugin hooks."""

from fusekit.hookspecs import hookimpl


@hookimpl
def register_fusers(register):
    from .simple import Average

    register(Average)
