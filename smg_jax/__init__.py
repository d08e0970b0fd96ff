"""smg-jax: the SMG micro-gesture benchmark in JAX/Flax."""

__version__ = "0.1.0"
