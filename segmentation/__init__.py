"""graftwatch segmentation: device choice, inference, post-processing, quantification, survival analysis."""
