"""Test harness: tiny random-weight models of every image-text-to-text model type (`savs.testing.tiny_models`)."""
