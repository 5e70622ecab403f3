"""A model file: its model card (the typed record that travels inside the .tflite), the check of its bytes
before any runtime sees them (which also reads the card), and the registry of bundled models."""
