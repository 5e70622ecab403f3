"""edgecrop's bundled .tflite models and their model cards (package data: edgecrop.models)."""
