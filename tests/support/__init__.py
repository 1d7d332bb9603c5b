"""Helpers the tests share: broker taps and publishers, workers, hand-built AMQP envelopes."""
