"""A synthetic conveyor belt: waste cut-outs riding a moving belt, rendered to MP4 with their truth."""
