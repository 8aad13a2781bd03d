"""An example fusekit plugin: fusion weighted by local energy."""
