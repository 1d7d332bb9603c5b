"""Developer tooling: finding or starting a RabbitMQ for the demo and the tests, and the demo itself."""
