"""Reading a process's /metrics the way Prometheus does: prometheus_client's own text parser."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


class Scrape:
    """The samples of one scrape, with sums over label subsets."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [
            Sample(sample.name, dict(sample.labels), sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    def total(self, name: str, **labels: str) -> float:
        """Sum of the samples called ``name`` whose labels include ``labels`` (0 if none)."""
        return sum(
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def values(self, name: str, label: str) -> dict[str, float]:
        """``{label value: sample value}`` of the samples called ``name``."""
        return {s.labels[label]: s.value for s in self.samples if s.name == name and label in s.labels}


def scrape(url: str, timeout: float = 5.0) -> Scrape:
    """GET ``url`` (a /metrics endpoint) and parse it; raises OSError when nothing answers."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return Scrape(response.read().decode())


def scrape_port(port: int, host: str = "127.0.0.1") -> Scrape:
    return scrape(f"http://{host}:{port}/metrics")
