"""The project's demo models (demo-clip, demo-siglip), trained on the simulated line."""
