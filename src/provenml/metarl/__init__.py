"""DynaMITE-RL (Liang et al. 2024): meta-RL where the latent changes between sessions."""
