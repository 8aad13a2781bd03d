"""Hook implementations: the only module fusekit imports at start-up."""

from fusekit import hookimpl


@hookimpl
def register_fusers(register):
    from .local_energy import LocalEnergy

    register(LocalEnergy)
