"""graftwatch models: network definitions, shipped weights and model cards, training. Imports torch and imaging."""
