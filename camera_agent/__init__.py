"""Sortline camera agent: capture frames beside the conveyor and publish them to RabbitMQ."""
