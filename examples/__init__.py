"""The sample photo, shipped as package data (edgecrop.examples) so every install benchmarks the same input."""
