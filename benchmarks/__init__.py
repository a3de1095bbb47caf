"""Side-by-side speed and quality measurements (not tests). `make bench` runs them all."""
