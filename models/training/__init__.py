"""Training of the shipped networks: data, augmentation, loss, the loop."""
