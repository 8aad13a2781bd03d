"""fusekit_classic: traditional image-fusion baselines, shipped as a fusekit plugin."""
