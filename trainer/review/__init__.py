"""``trainer review``: a person labels the items the line found hard, in the browser."""
