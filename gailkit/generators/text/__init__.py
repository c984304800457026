"""Text generators (work in progress): decoding is ready in gailkit.generators.text.decoding."""
