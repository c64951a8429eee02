"""Academic records (profesores and grupos): a service that owns the data, reached over RabbitMQ
request/reply (or in-process in embedded mode), publishing every change on a topic exchange."""
